"""Distill: ask the teacher (DeepSeek-R1 in the paper) to reason about each item, and keep its
reasoning and final answer on the row.

    config = DistillConfig(teacher=ClientConfig(model="deepseek-reasoner", base_url="https://api.deepseek.com",
                                                api_key_env="DEEPSEEK_API_KEY", max_tokens=8000))
    manifest = run_stage(Distill(config, run_dir), rows, run_dir / "05_distill", upstream=fingerprint)

Each kept row gains `row["teacher"] = {"reasoning", "content", "finish_reason", "model", "usage",
"cost", "cached"}`. The paper sent `Return your final response within \\boxed{}. {prompt}` with at
most 8,000 tokens; here the row's `prompt` already ends with that instruction, so the default
template is the prompt alone (set `prompt_template` to the paper's wording to send it twice).

The teacher can be any `ClientConfig`: the demo distills from the default model in-process,

    teacher: {kind: local, model: smollm2-135m, max_tokens: 256,
              extra_body: {thinking_budget: 512, min_thinking_tokens: 128, num_extensions: 8}}

(SmolLM2 stops thinking at once unless a minimum and extensions keep it going.) With the local
kind, each batch of rows is one engine call.

A row that already carries a teacher section (the HuatuoGPT-o1 demo chains arrive with theirs)
keeps it by default and costs no request (`existing: keep`; the row is marked
`row["distill"] = "kept existing teacher"`); `existing: replace` asks the teacher
anyway and keeps the earlier section under `row["previous_teacher"]`. The report counts both.

Dropped, each with its reason: replies cut short by the token limit (the reference kept those,
with no final answer), replies without reasoning or without a final answer, and requests that
still failed after the client's retries. Replies are cached by the client, so a re-run, a resumed
run or a run with a changed later stage pays for nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from m1.engine.client import ChatClient, ChatReply, ClientConfig, PromptTemplate, RequestFailed, user_turn
from m1.curation.stage import Drop, Outcome, Row, RowStage


def _deepseek_r1() -> ClientConfig:
    # R1 ignores sampling parameters, so none are sent; its reasoning comes back as reasoning_content.
    return ClientConfig(model="deepseek-reasoner", base_url="https://api.deepseek.com", api_key_env="DEEPSEEK_API_KEY",
                        max_tokens=8000, temperature=None)


class DistillConfig(BaseModel):
    """The teacher and how it is asked."""

    model_config = ConfigDict(extra="forbid")

    teacher: ClientConfig = Field(default_factory=_deepseek_r1)
    prompt_template: PromptTemplate = "{prompt}"
    existing: Literal["keep", "replace"] = Field(
        "keep", description="rows that already have a teacher section: keep it, or ask the teacher anyway")
    workers: int = Field(8, gt=0, description="requests in flight at once (threads, for an API)")
    batch_size: int = Field(64, gt=0, description="rows written to disk together")


class Distill(RowStage):
    """Adds the teacher's reasoning and final answer to each row."""

    name = "distill"
    version = "2"  # existing teacher sections are kept by default

    def __init__(self, config: DistillConfig, run_dir: Path):
        self.config = config
        self.client = ChatClient(config.teacher, cache_dir=Path(run_dir) / "cache")
        self.workers, self.batch_size = config.workers, config.batch_size

    def params(self) -> dict[str, Any]:
        return {"teacher": self.config.teacher.identity(), "prompt_template": self.config.prompt_template,
                "existing": self.config.existing}

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        return {"teacher": self.client.stats(),
                "kept_existing": sum(row.get("distill") == "kept existing teacher" for row in kept),
                "replaced_existing": sum("previous_teacher" in row for row in kept)}

    def process(self, row: Row) -> Outcome:
        return self.process_batch([row])[0]

    def process_batch(self, rows: Sequence[Row]) -> list[Outcome]:
        # One call for the batch: `workers` requests in flight for an API, one engine batch locally.
        ask = [row for row in rows if self.config.existing == "replace" or not isinstance(row.get("teacher"), dict)]
        conversations = [user_turn(self.config.prompt_template, row["prompt"]) for row in ask]
        replies = dict(zip((row["uid"] for row in ask), self.client.chat_many(conversations, workers=self.workers)))
        return [self._decide(row, replies[row["uid"]]) if row["uid"] in replies
                else {**row, "distill": "kept existing teacher"} for row in rows]

    @staticmethod
    def _decide(row: Row, reply: ChatReply | RequestFailed) -> Outcome:
        if isinstance(reply, RequestFailed):
            return Drop(reply.reason, reply.detail)
        tokens = f"{reply.usage['completion_tokens']} completion tokens"
        if reply.truncated:
            return Drop("teacher reply truncated (finish_reason=length)", tokens)
        if not reply.reasoning.strip():
            return Drop("teacher reply has no reasoning", f"content starts {reply.content[:80]!r}")
        if not reply.content.strip():
            return Drop("teacher reply has no final answer", tokens)
        previous = {"previous_teacher": row["teacher"]} if isinstance(row.get("teacher"), dict) else {}
        return {**row, **previous, "teacher": reply.record()}
