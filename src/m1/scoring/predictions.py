"""Predictions files: read them, score them in both modes, report.

    rows = read_predictions("runs/b4096/predictions.jsonl")   # raises DataError on bad input
    strict = score_predictions(rows, "strict")                 # [ScoredRow]
    report = build_report(rows)                                # both modes + where they disagree
    score_command_result("runs/b4096/predictions.jsonl")       # the dict behind `m1 score --json`

The file is JSON Lines, UTF-8, one object per line (blank lines are skipped):

    {"uid": "3f2a9c0e1b7d4a55", "source": "MedQA_USLME_test",
     "options": {"A": "Liver", "B": "Kidney", "C": "Heart", "D": "Lung"},
     "answer_idx": "B", "reply": "...the full model output...", "budget": 4096}

    uid         non-empty string, unique in the file (rows are joined by uid, never by position)
    source      non-empty string: the benchmark the item belongs to (one accuracy row each)
    options     object, at least two entries, keys single capital letters A-Z in display order,
                values strings (an empty one is allowed: a real HLE item has one)
    answer_idx  the correct letter; must be a key of `options`
    reply       string (may be empty): everything the model generated for the item
    any other field is kept, unchanged, in `PredictionRow.extra`.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m1.data.errors import DataError
from m1.io import text_lines
from m1.scoring.extract import GRADERS, MODES, score_reply
from m1.scoring.metrics import Disagreement, ModeMetrics, ScoredRow, disagreement, mode_metrics

REQUIRED_FIELDS = ("uid", "source", "options", "answer_idx", "reply")


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One line of a predictions file."""

    uid: str
    source: str
    options: dict[str, str]
    answer_idx: str
    reply: str
    extra: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # 1-based line in the file it was read from (0 when built in code)

    def to_record(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "source": self.source,
            "options": dict(self.options),
            "answer_idx": self.answer_idx,
            "reply": self.reply,
            **self.extra,
        }


def read_predictions(path: str | Path) -> list[PredictionRow]:
    """Every row of a predictions file, checked; the first problem raises `DataError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError.at(path, problem="file not found", fix="check the path") from None
    except UnicodeDecodeError as exc:
        raise DataError.at(path, problem=f"not UTF-8 text ({exc.reason})", fix="save it as UTF-8") from None

    rows: list[PredictionRow] = []
    first_line_of: dict[str, int] = {}
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        row = _parse_line(path, number, line)
        if row.uid in first_line_of:
            raise DataError.at(
                path, number, "uid", f"uid {row.uid!r} repeats line {first_line_of[row.uid]}",
                "give every prediction its own uid",
            )
        first_line_of[row.uid] = number
        rows.append(row)
    return rows


def _parse_line(path: Path, number: int, line: str) -> PredictionRow:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError.at(
            path, number, "", f"not valid JSON ({exc.msg} at column {exc.colno})",
            "write one JSON object per line",
        ) from None
    return prediction_from_record(path, number, record)


def prediction_from_record(path: str | Path, number: int, record: Any) -> PredictionRow:
    """Check one decoded row (from a file, or built in memory) and make a `PredictionRow`."""
    if not isinstance(record, dict):
        raise DataError.at(
            path, number, "", f"a JSON {type(record).__name__} where an object was expected",
            "write one JSON object per line",
        )
    for name in REQUIRED_FIELDS:
        if name not in record:
            raise DataError.at(path, number, name, "missing", f"add '{name}' ({_FIELD_HELP[name]})")

    for name in ("uid", "source"):
        if not isinstance(record[name], str) or not record[name].strip():
            raise DataError.at(
                path, number, name, f"must be a non-empty string, got {record[name]!r}", _FIELD_HELP[name]
            )
    options = record["options"]
    if not isinstance(options, dict) or len(options) < 2:
        raise DataError.at(
            path, number, "options", f"must be an object with at least two options, got {options!r}",
            _FIELD_HELP["options"],
        )
    for letter, text in options.items():
        if len(letter) != 1 or letter not in string.ascii_uppercase:
            raise DataError.at(
                path, number, "options", f"key {letter!r} is not a single capital letter A-Z",
                _FIELD_HELP["options"],
            )
        if not isinstance(text, str):
            raise DataError.at(
                path, number, "options", f"option {letter} must be text, got {text!r}",
                _FIELD_HELP["options"],
            )
    answer = record["answer_idx"]
    if not isinstance(answer, str) or answer not in options:
        raise DataError.at(
            path, number, "answer_idx", f"{answer!r} is not one of the options {', '.join(options)}",
            "use the letter of the correct option",
        )
    if not isinstance(record["reply"], str):
        raise DataError.at(
            path, number, "reply", f"must be a string, got {type(record['reply']).__name__}",
            _FIELD_HELP["reply"],
        )
    extra = {key: value for key, value in record.items() if key not in REQUIRED_FIELDS}
    return PredictionRow(
        record["uid"], record["source"], options, answer, record["reply"], extra, number
    )


_FIELD_HELP = {
    "uid": "the item's unique id, a non-empty string",
    "source": "the benchmark name, a non-empty string",
    "options": 'an object of letter -> option text, e.g. {"A": "Liver", "B": "Kidney"}',
    "answer_idx": "the correct option's letter",
    "reply": 'the model output as a string; write "" for an empty reply',
}


def score_predictions(rows: Iterable[PredictionRow], mode: str = "strict") -> list[ScoredRow]:
    """Score every row with one grader of `GRADERS` (see `m1.scoring.extract`)."""
    if mode not in GRADERS:
        raise ValueError(f"unknown grader {mode!r}; valid graders: {', '.join(GRADERS)}")
    scored = []
    for row in rows:
        result = score_reply(row.reply, row.options, row.answer_idx, mode)
        scored.append(
            ScoredRow(row.uid, row.source, row.answer_idx, result.letter, result.rule, result.correct)
        )
    return scored


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """Metrics of both modes over the same predictions, and where the modes disagree."""

    items: int
    modes: dict[str, ModeMetrics]
    disagreement: Disagreement
    file: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "items": self.items,
            "modes": {name: metrics.to_dict() for name, metrics in self.modes.items()},
            "disagreement": self.disagreement.to_dict(),
        }


def build_report(rows: Sequence[PredictionRow], *, max_examples: int = 20, file: str = "") -> ScoreReport:
    """Score `rows` in reference and strict mode and compare them."""
    reference = score_predictions(rows, "reference")
    strict = score_predictions(rows, "strict")
    return ScoreReport(
        items=len(rows),
        modes={
            "reference": mode_metrics(reference, "reference"),
            "strict": mode_metrics(strict, "strict"),
        },
        disagreement=disagreement(reference, strict, max_examples=max_examples),
        file=file,
    )


def score_file(path: str | Path, *, max_examples: int = 20) -> ScoreReport:
    """`build_report` of a predictions file."""
    return build_report(read_predictions(path), max_examples=max_examples, file=str(path))


def score_command_result(path: str | Path, mode: str = "strict") -> dict[str, Any]:
    """What `m1 score PREDICTIONS.jsonl [--mode] --json` prints: the report of both modes, with
    `mode` named as the primary one (the one a table shows)."""
    if mode not in MODES:
        raise ValueError(f"unknown scoring mode {mode!r}; valid modes: {', '.join(MODES)}")
    return {"primary_mode": mode, **score_file(path).to_dict()}
