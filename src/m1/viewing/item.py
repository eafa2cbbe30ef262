"""One item for its page: the question, options and gold answer, then per run, grid point and
sample the prediction read from its own predictions line (by the index's offset), as trace
segments (`m1.evaluation.trace`) with its scores in both modes and its token counts.

    with catalog.reading() as db:
        view = item_view(db, catalog, "MedQA_USLME_test-0001", runs=[0, 1])   # None: no such item
        view.columns[0].points[0].samples[0].segments

At a point with several samples, `PointView.votes` is each mode's majority vote over the samples
(the run's summary's answer); every sample is shown.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from m1.evaluation.trace import Segment, segments, trace_note
from m1.evaluation.view_links import point_name
from m1.scoring import MODES
from m1.viewing.catalog import Catalog, PointRef
from m1.viewing.index import predictions_file, read_prediction
from m1.viewing.runs import Run


@dataclass(frozen=True)
class Score:
    letter: str | None
    rule: str | None
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        return {"letter": self.letter, "rule": self.rule, "correct": self.correct}


@dataclass(frozen=True)
class SampleView:
    """One prediction: where it is, its tokens and ends, its scores, and its trace."""

    sample: int
    where: str  # "points/<key>/predictions.jsonl line N"
    thinking_tokens: int | None
    answer_tokens: int | None
    inserted_tokens: int | None
    probe_tokens: int | None
    thinking_end: str | None
    answer_end: str | None
    error: str | None
    scores: dict[str, Score]
    scored_by: str
    segments: list[Segment] = field(default_factory=list)
    note: str | None = None  # why the text is unmarked, or why it could not be read
    exit_rule: str | None = None
    answer_read: dict[str, Any] | None = None

    @property
    def probes(self) -> list[Segment]:
        return [segment for segment in self.segments if segment.kind == "probe"]

    def part(self, name: str) -> list[Segment]:
        return [segment for segment in self.segments if segment.part == name]

    def to_dict(self) -> dict[str, Any]:
        return {"sample": self.sample, "where": self.where, "thinking_tokens": self.thinking_tokens,
                "answer_tokens": self.answer_tokens, "inserted_tokens": self.inserted_tokens,
                "probe_tokens": self.probe_tokens, "thinking_end": self.thinking_end, "answer_end": self.answer_end,
                "error": self.error, "scores": {mode: score.to_dict() for mode, score in self.scores.items()},
                "scored_by": self.scored_by, "segments": [segment.to_dict() for segment in self.segments],
                "note": self.note, "exit_rule": self.exit_rule, "answer_read": self.answer_read}


@dataclass(frozen=True)
class PointView:
    name: str
    key: str
    samples_expected: int
    samples: list[SampleView]
    votes: dict[str, Score] | None = None  # several samples: each mode's majority vote
    focused: bool = False  # the page opens this point's traces
    budget: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "samples_expected": self.samples_expected,
                "focused": self.focused,
                "votes": None if self.votes is None else {mode: score.to_dict() for mode, score in self.votes.items()},
                "samples": [sample.to_dict() for sample in self.samples]}


@dataclass(frozen=True)
class RunColumn:
    run: str
    answered: bool  # the run has the item in its items.jsonl
    points: list[PointView]

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "answered": self.answered, "points": [point.to_dict() for point in self.points]}


@dataclass(frozen=True)
class ItemView:
    uid: str
    position: int
    source: str
    domain: str | None
    question: str
    options: dict[str, str]
    answer_idx: str
    answer: str
    columns: list[RunColumn]

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "position": self.position, "source": self.source, "domain": self.domain,
                "question": self.question, "options": self.options, "answer_idx": self.answer_idx,
                "answer": self.answer, "runs": [column.to_dict() for column in self.columns]}


def item_view(db: sqlite3.Connection, catalog: Catalog, uid: str, runs: Sequence[int],
              focus: PointRef | None = None) -> ItemView | None:
    """The item `uid` as the runs `runs` (catalog positions) answered it; None when no run has it.

    Each column focuses one point (the page opens its traces): the one with `focus`'s key, else
    the first with its budget (a fixed budget beside its early-exit point), else its first."""
    found = db.execute("SELECT rank, domain FROM universe WHERE uid = ?", (uid,)).fetchone()
    if found is None:
        return None
    position, domain = found
    item = next(json.loads(row[0]) for number in range(len(catalog.runs))
                if (row := db.execute(f"SELECT item FROM r{number}.items WHERE uid = ?", (uid,)).fetchone()))
    columns = [_focused(_column(db, catalog, number, uid), focus) for number in runs]
    return ItemView(uid, position, item["source"], domain, item["question"], item["options"], item["answer_idx"],
                    item["answer"], columns)


_COLUMNS = ("point", "sample", "line", "offset", "length", "thinking_tokens", "answer_tokens", "inserted_tokens",
            "probe_tokens", "thinking_end", "answer_end", "error", "scored_by",
            *(f"{mode}_{field}" for mode in MODES for field in ("letter", "rule", "correct")))


def _focused(column: RunColumn, focus: PointRef | None) -> RunColumn:
    chosen = next((p for p in column.points if focus is not None and p.key == focus.key), None) or next(
        (p for p in column.points if focus is not None and p.budget == focus.budget), None) or next(
        iter(column.points), None)
    return replace(column, points=[replace(p, focused=p is chosen) for p in column.points])


def _column(db: sqlite3.Connection, catalog: Catalog, number: int, uid: str) -> RunColumn:
    run = catalog.runs[number]
    answered = db.execute(f"SELECT 1 FROM r{number}.items WHERE uid = ?", (uid,)).fetchone() is not None
    rows = [dict(zip(_COLUMNS, row)) for row in
            db.execute(f"SELECT {', '.join(_COLUMNS)} FROM r{number}.predictions WHERE uid = ? ORDER BY sample", (uid,))]
    votes = {key: (letter_s, correct_s, letter_r, correct_r) for key, letter_s, correct_s, letter_r, correct_r in
             db.execute(f"SELECT point, strict_letter, strict_correct, reference_letter, reference_correct "
                        f"FROM r{number}.outcomes WHERE uid = ?", (uid,))}
    points = []
    for point in run.points:
        mine = [row for row in rows if row["point"] == point.key]
        if not mine:
            continue
        vote = None
        if point.samples > 1 and point.key in votes:
            letter_s, correct_s, letter_r, correct_r = votes[point.key]
            vote = {"strict": Score(letter_s, "majority_vote", bool(correct_s)),
                    "reference": Score(letter_r, "majority_vote", bool(correct_r))}
        points.append(PointView(point_name(run.name, point.key), point.key, point.samples,
                                [_sample(run, uid, row) for row in mine], vote, budget=point.budget))
    return RunColumn(run.name, answered, points)


def _sample(run: Run, uid: str, entry: dict[str, Any]) -> SampleView:
    where = f"{predictions_file(entry['point'])} line {entry['line']}"
    scores = {mode: Score(entry[f"{mode}_letter"], entry[f"{mode}_rule"], bool(entry[f"{mode}_correct"]))
              for mode in MODES}
    fields = {name: entry[name] for name in ("thinking_tokens", "answer_tokens", "inserted_tokens", "probe_tokens",
                                             "thinking_end", "answer_end", "error")}
    try:
        row = read_prediction(run, entry["point"], entry["offset"], entry["length"])
    except (OSError, ValueError) as err:
        row, note = None, f"{where} could not be read ({err}): reload the page"
    else:
        if not isinstance(row, dict) or row.get("uid") != uid:
            row, note = None, f"{where} changed since it was indexed: reload the page"
        else:
            note = trace_note(row)
    if row is None:
        return SampleView(entry["sample"], where, **fields, scores=scores, scored_by=entry["scored_by"], note=note)
    exit_rule, answer_read = row.get("exit_rule"), row.get("answer_read")
    return SampleView(entry["sample"], where, **fields, scores=scores, scored_by=entry["scored_by"],
                      segments=segments(row), note=note, exit_rule=exit_rule if isinstance(exit_rule, str) else None,
                      answer_read=answer_read if isinstance(answer_read, dict) else None)
