"""Difficulty filter: answer each item with one or more base models and keep those they get wrong.

    config = DifficultyConfig(models=[ClientConfig(kind="local", backend="vllm", model="Qwen/Qwen2.5-7B-Instruct",
                                                   extra_body={"budget_preset": "no-think"})])
    manifest = run_stage(DifficultyFilter(config, run_dir), rows, run_dir / "04_difficulty", upstream=fingerprint)

The paper asked Qwen2.5-7B-Instruct and Qwen2.5-32B-Instruct, greedily, and kept only the items
both got wrong (7B solved 61.3 %, 32B 73.1 %). Models are `ClientConfig`s: `kind: local` runs the
m1 engine in-process and answers each batch of rows in one engine call; `kind: openai` asks an
endpoint (vLLM or `m1 serve` for a model too large to share a process with another, or an API)
with `max_concurrency` requests in flight. Replies are cached like the teacher's.

Prompt: the paper sent `Return your final response within \\boxed{}. {prompt}`. A row's `prompt`
already is the evaluation prompt, ending with that instruction, so the default template sends it
as it is: the base models see exactly what a fine-tuned model sees at evaluation time. Set
`prompt_template` to the paper's wording to reproduce it word for word.

Each row, kept or dropped, gains `row["difficulty"] = {"models": {model: {"reply", "finish_reason",
"letter", "rule", "correct", "graders": {grader: {"letter", "rule", "correct"}}}}, "n_wrong": int}`:
every grader's verdict, with `letter`/`rule`/`correct` those of the grader that decides. `grader`
picks it: `strict` (default: an unparseable reply is not a solve), `reference` (the paper's
evaluation grader) or `notebook` (the grader of the paper's difficulty notebook, first-character
defect included, to reproduce its funnel: an unboxed "Based on…" counts as solving item B).
`keep`: `all_wrong` (the paper), `any_wrong` (drop only what every model solves), or `none`
(annotate every row, drop nothing). A row some model could not answer at all (request failed
after retries) is dropped with that reason rather than counted as unsolved.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from m1.engine.client import ChatClient, ChatReply, ClientConfig, PromptTemplate, RequestFailed, user_turn
from m1.curation.stage import Drop, Outcome, Row, RowStage, annotations
from m1.scoring import GRADERS, score_all


def _paper_models() -> list[ClientConfig]:
    return [ClientConfig(kind="local", backend="vllm", model=model, max_tokens=4096,
                         extra_body={"budget_preset": "no-think"})
            for model in ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-32B-Instruct")]


class DifficultyConfig(BaseModel):
    """The base models that define "too easy", and which items survive them."""

    model_config = ConfigDict(extra="forbid")

    models: list[ClientConfig] = Field(default_factory=_paper_models, min_length=1)
    prompt_template: PromptTemplate = "{prompt}"
    keep: Literal["all_wrong", "any_wrong", "none"] = "all_wrong"
    grader: Literal[GRADERS] = Field("strict", description="which grader of m1.scoring.GRADERS decides a solve")  # type: ignore[valid-type]
    batch_size: int = Field(64, gt=0, description="rows answered (and written to disk) together")

    @field_validator("models")
    @classmethod
    def _distinct_names(cls, models: list[ClientConfig]) -> list[ClientConfig]:
        names = Counter(model.model for model in models)
        twice = [name for name, n in names.items() if n > 1]
        if twice:
            raise ValueError(f"model {twice[0]} is listed twice; results are stored by model name")
        return models


class DifficultyFilter(RowStage):
    """Drops items the base models already solve."""

    name = "difficulty"
    version = "2"  # every grader's verdict stored, dropped rows annotated

    def __init__(self, config: DifficultyConfig, run_dir: Path):
        self.config = config
        self.clients = {model.model: ChatClient(model, cache_dir=Path(run_dir) / "cache") for model in config.models}
        self.batch_size = config.batch_size

    def params(self) -> dict[str, Any]:
        return {"models": [model.identity() for model in self.config.models],
                "prompt_template": self.config.prompt_template, "keep": self.config.keep,
                "grader": self.config.grader}

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        """Per model: this process's client figures, and how many of the stage's items it solved."""
        judged = annotations(kept, dropped, "difficulty")
        return {"models": {name: client.stats() | {"solved": sum(d["models"][name]["correct"] for d in judged)}
                           for name, client in self.clients.items()}}

    def process(self, row: Row) -> Outcome:
        return self.process_batch([row])[0]

    def process_batch(self, rows: Sequence[Row]) -> list[Outcome]:
        conversations = [user_turn(self.config.prompt_template, row["prompt"]) for row in rows]
        # One call per model for the whole batch: a local engine batches the prompts on its device.
        answers = {name: client.chat_many(conversations) for name, client in self.clients.items()}
        return [self._decide(row, {name: replies[i] for name, replies in answers.items()})
                for i, row in enumerate(rows)]

    def _decide(self, row: Row, replies: dict[str, ChatReply | RequestFailed]) -> Outcome:
        failed = {name: reply for name, reply in replies.items() if isinstance(reply, RequestFailed)}
        if failed:
            name, failure = next(iter(failed.items()))
            return Drop(f"base model {name} failed: {failure.reason}", failure.detail)
        results = {name: self._judge(row, reply) for name, reply in replies.items()}
        solved = [name for name, result in results.items() if result["correct"]]
        row = {**row, "difficulty": {"models": results, "n_wrong": len(results) - len(solved)}}
        everyone = len(solved) == len(results)
        if (self.config.keep == "all_wrong" and solved) or (self.config.keep == "any_wrong" and everyone):
            return Drop(f"solved by {', '.join(solved)}", f"{self.config.grader} grader", row)
        return row

    def _judge(self, row: Row, reply: ChatReply) -> dict[str, Any]:
        verdicts = score_all(reply.content, row["options"], row["answer_idx"])
        return {"reply": reply.content, "finish_reason": reply.finish_reason,
                **verdicts[self.config.grader].to_dict(),
                "graders": {grader: verdict.to_dict() for grader, verdict in verdicts.items()}}
