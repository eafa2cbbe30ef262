"""Domain classifier: give each item one of the 76 MeSH topical qualifiers (codes 00–75), the
domains m1k is sampled over.

    config = ClassifyConfig(client=ClientConfig(model="gpt-4o-mini", api_key_env="OPENAI_API_KEY"))
    manifest = run_stage(DomainClassifier(config, run_dir), rows, run_dir / "07_classify", upstream=fingerprint)

The model reads the rubric (every qualifier's code, name and scope note) as the system message,
first, so that providers that cache a shared prompt prefix bill it once; the question and its
options follow as the user message. The reply's code is read by `m1.curation.mesh.parse_code`
(a code written as a code, never "the last two characters"). When no code can be read, the model
is asked once more, shown its own reply (rows go to the client a batch at a time, so a local
engine answers them together); when that fails too, or the request itself fails after
the client's retries, the qualifier whose scope note is most similar to the question is used and
the row is flagged: `row["domain"] = {"code", "name", "method": "llm" | "fallback", "flagged",
"attempts", "reply"}`. No row is dropped here unless `fallback: drop`.

The rubric is about 3,300 tokens. An API with prompt caching, or vLLM with prefix caching, reads
it once; the in-process transformers backend reads it again for every row (minutes on a CPU).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from m1.engine.client import ChatClient, ClientConfig, Messages, RequestFailed
from m1.curation.mesh import Qualifier, ScopeNoteIndex, load_qualifiers, parse_code, rubric_text
from m1.curation.stage import Drop, Outcome, Row, RowStage, annotations
from m1.engine.prompt import user_message

INSTRUCTIONS = """You sort medical exam questions into domains. The domains are the MeSH topical \
qualifiers below, each given as a two-digit code, its name and its scope note.

{rubric}

Read the question that follows and decide which single qualifier best describes what it asks \
about: what the examinee must know to answer it, not every topic it mentions. You may reason \
briefly. End your reply with a last line of the form

Code: NN

where NN is the two-digit code (00 to 75) of that qualifier."""

REASK = "I could not find a code in your reply. Reply with only the last line, `Code: NN`, using a two-digit code from 00 to 75."


def _classifier_model() -> ClientConfig:
    return ClientConfig(model="gpt-4o-mini", max_tokens=1024)


class ClassifyConfig(BaseModel):
    """The model that assigns domains, and what happens when it gives no code."""

    model_config = ConfigDict(extra="forbid")

    client: ClientConfig = Field(default_factory=_classifier_model)
    rubric_path: Path | None = Field(None, description="default: the shared data's mesh/qualifier_scope_note.tsv")
    include_options: bool = Field(True, description="show the answer options with the question")
    max_attempts: int = Field(2, ge=1, description="asks per row; later asks quote the unreadable reply")
    fallback: Literal["similarity", "drop"] = "similarity"
    workers: int = Field(8, gt=0, description="requests in flight at once (threads, for an API)")
    batch_size: int = Field(64, gt=0, description="rows written to disk together")


class DomainClassifier(RowStage):
    """Adds a MeSH qualifier (`row["domain"]`) to each row."""

    name = "classify"

    def __init__(self, config: ClassifyConfig, run_dir: Path):
        self.config = config
        self.qualifiers = load_qualifiers(config.rubric_path)
        self.rubric = INSTRUCTIONS.format(rubric=rubric_text(self.qualifiers))
        self.index = ScopeNoteIndex(self.qualifiers)
        self.client = ChatClient(config.client, cache_dir=Path(run_dir) / "cache")
        self.workers, self.batch_size = config.workers, config.batch_size

    def params(self) -> dict[str, Any]:
        # The rubric text itself, not its path: an edited rubric must redo the stage.
        return {"client": self.config.client.identity(), "rubric": self.rubric,
                "include_options": self.config.include_options, "max_attempts": self.config.max_attempts,
                "fallback": self.config.fallback}

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        methods = Counter(domain["method"] for domain in annotations(kept, dropped, "domain"))
        return {"client": self.client.stats(), "methods": dict(methods.most_common())}

    def question(self, row: Row) -> str:
        return user_message(row["question"], row["options"] if self.config.include_options else None, suffix=None)

    def process(self, row: Row) -> Outcome:
        return self.process_batch([row])[0]

    def process_batch(self, rows: Sequence[Row]) -> list[Outcome]:
        """Ask for every row at once, then ask again only for the replies without a code.

        A batch at a time lets a local engine generate the rows together and an API serve them
        from `workers` threads; a row whose request failed is not asked again (the client has
        already retried it).
        """
        conversations: list[Messages] = [[{"role": "system", "content": self.rubric},
                                          {"role": "user", "content": self.question(row)}] for row in rows]
        outcomes: list[Outcome | None] = [None] * len(rows)
        replies, problems, attempts = [""] * len(rows), [""] * len(rows), [0] * len(rows)
        pending = list(range(len(rows)))
        for attempt in range(1, self.config.max_attempts + 1):
            answers = self.client.chat_many([conversations[i] for i in pending], workers=self.workers)
            unreadable = []
            for i, answer in zip(pending, answers):
                attempts[i] = attempt
                if isinstance(answer, RequestFailed):
                    problems[i] = answer.reason
                    continue
                replies[i] = answer.content
                found = parse_code(answer.content, self.qualifiers)
                if found is not None:
                    outcomes[i] = self._labelled(rows[i], found, "llm", attempt, answer.content)
                    continue
                problems[i] = "no code in the reply"
                conversations[i] = [*conversations[i], {"role": "assistant", "content": answer.content},
                                    {"role": "user", "content": REASK}]
                unreadable.append(i)
            pending = unreadable
            if not pending:
                break
        return [outcome if outcome is not None else self._fallback(row, problem, reply, tries)
                for row, outcome, problem, reply, tries in zip(rows, outcomes, problems, replies, attempts)]

    def _fallback(self, row: Row, problem: str, reply: str, attempts: int) -> Outcome:
        if self.config.fallback == "drop":
            return Drop(f"domain not classified: {problem}", reply[-200:] or None)
        return self._labelled(row, self.index.best(self.question(row)), "fallback", attempts, reply)

    def _labelled(self, row: Row, qualifier: Qualifier, method: str, attempts: int, reply: str) -> Row:
        return {**row, "domain": {"code": qualifier.code, "name": qualifier.name, "method": method,
                                  "flagged": method != "llm", "attempts": attempts, "reply": reply}}
