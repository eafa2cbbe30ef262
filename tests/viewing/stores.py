"""Synthetic run stores for the viewer's tests, written exactly as `m1 eval` writes them: the run
store's own methods, the runner's row builder (`prediction_row`) over controller-style records
with spans, and the runner's scoring (`score_run`) when the run is finished. Each item's answer
at each point is chosen by the test, so every count a filter gives is known by construction;
`odd_rows` makes rows that are valid JSON with odd fields, as a hand-edited or foreign file has."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from m1.config import load_config
from m1.data.items import MCQItem
from m1.engine.controller import GenerationRecord
from m1.evaluation.config import EvalConfig, GridConfig, GridPoint
from m1.evaluation.domains import label_line, write_labels
from m1.evaluation.results import score_run
from m1.evaluation.runner import prediction_row
from m1.evaluation.store import RunStore

OPTIONS = {"A": "Liver", "B": "Kidney", "C": "Heart", "D": "Lung"}


def make_items(sources: dict[str, int]) -> list[MCQItem]:
    return [MCQItem(uid=f"{source}-{i}", source=source, question=f"Question {i} of {source}: which organ {i}?",
                    options=OPTIONS, answer_idx="A", answer="Liver")
            for source, size in sources.items() for i in range(size)]


@dataclass(frozen=True)
class Answer:
    """What one sample answered: a letter (None: a reply with no answer in it), thinking tokens,
    whether the budget was hit, and the number of Waits inserted."""

    letter: str | None
    tokens: int = 10
    budget_hit: bool = False
    waits: int = 1


def record(answer: Answer) -> GenerationRecord:
    """A record as the controller fills it: thinking with its Waits, then the answer prefix and reply."""
    rec = GenerationRecord(prompt="")
    rec.add_span("generated", "Let me think.")
    thinking = "Let me think."
    for _ in range(answer.waits):
        rec.add_span("inserted", " Wait")
        rec.add_span("generated", ", more.")
        thinking += " Wait, more."
    prefix = "\n<|im_start|>answer\nFinal Answer:" if answer.budget_hit else "<|im_start|>answer"
    reply = f" \\boxed{{{answer.letter}}}" if answer.letter else " I am not sure."
    rec.add_span("inserted", prefix)
    rec.add_span("generated", reply)
    rec.thinking, rec.answer, rec.reply = thinking, reply, prefix + reply
    rec.thinking_tokens, rec.answer_tokens, rec.inserted_tokens = answer.tokens, 5, 3 * answer.waits
    rec.extensions_used = answer.waits
    rec.thinking_end = "budget_reached" if answer.budget_hit else "extensions_spent"
    rec.answer_end = "stop"
    return rec


def make_run(root: Path, name: str, items: list[MCQItem], answers: dict[str, dict[str, list[Answer]]],
             budgets: list[int], samples: list[int] | None = None, finish: bool = True,
             domains: Path | None = None) -> Path:
    """A run directory: `answers[point key][uid]` lists each sample's answer (items or points left
    out have no prediction yet); scored and finished when `finish`."""
    sampled = {"policy": {"sampling": {"temperature": 0.7}}} if samples and max(samples) > 1 else {}
    config = EvalConfig(name=name, out_dir=str(root), preset="m1",
                        domains=str(domains) if domains else None,
                        grid=GridConfig(max_thinking_tokens=budgets, num_extensions=[1], samples=samples or [1]),
                        **sampled)
    store = RunStore.open(config)
    store.save_items(items)
    points = config.grid_points()
    for point in points:
        for item in items:
            for sample, answer in enumerate(answers.get(point.key, {}).get(item.uid, [])):
                store.append_prediction(point, prediction_row(item, point, record(answer), 0.1, sample))
    if finish:
        store.write_summary(score_run(config, store, points, items))
    return store.root


def point(root: Path, key: str) -> GridPoint:
    """A grid point of the run at `root`, from its config.yaml (to append rows to it)."""
    config = load_config(EvalConfig, root / "config.yaml")
    return next(p for p in config.grid_points() if p.key == key)


def predictions(root: Path, key: str) -> Path:
    return root / "points" / key / "predictions.jsonl"


def write_domains(path: Path, names: dict[str, tuple[str, str]]) -> Path:
    """A labels file: uid -> (code, domain name), as m1 label-domains writes it."""
    write_labels(path, [label_line(uid, uid.split("-")[0], {"code": code, "name": name, "method": "llm",
                                                             "flagged": False})
                        for uid, (code, name) in names.items()])
    return path


def odd_rows(path: Path) -> None:
    """Rewrite a point's first three rows as valid JSON with odd fields: probe entries that are not
    objects, an answer_read that is a string, a probability that is a word."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["probes"] = [1]
    rows[0]["spans"].insert(1, ["probe", 0])
    rows[1]["answer_read"], rows[1]["exit_rule"] = "x", ["x"]
    rows[2]["probes"] = [{"answer": "A", "probability": "high", "thinking_tokens": 3, "read": "letters"}]
    rows[2]["spans"].insert(1, ["probe", 0])
    rows[2]["answer_read"] = {"answer": "A", "probability": "high"}
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
