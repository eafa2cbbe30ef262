"""A bounded sample of items with their traces, embedded in report.html for readers without `m1 view`.

    sample = item_sample(runs, "strict")          # flipped items first, then the first run's order
    sample[0].runs[0].points[0].pieces            # trace segments, long thinking cut in the middle

Which items: those that flipped between neighbouring grid points (in the order of the runs' flip
lists), then the first run's other items in its order, `ITEMS_SHOWN` in all. For each run that
answered an item, every grid point's first sample: the letter and rule of the report's scoring
mode, the tokens, and the trace (`m1.evaluation.trace` segments) with thinking over
`TRACE_HEAD + TRACE_TAIL` characters cut to its start and end. The rows are found by streaming
each point's predictions.jsonl and decoding only the lines that name a chosen uid, so a run of
any size costs one read of its files and the memory of the sample.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from m1.evaluation.report.load import RunResult
from m1.evaluation.trace import Segment, segments, trace_note
from m1.evaluation.view_links import item_url

ITEMS_SHOWN = 8
TRACE_HEAD, TRACE_TAIL = 1500, 1500  # characters of thinking kept from its start and its end


@dataclass(frozen=True)
class PointTrace:
    key: str
    letter: str | None
    rule: str | None
    correct: bool | None  # None: the point has no scored row for the item
    thinking_tokens: int
    answer_tokens: int
    thinking_end: str | None
    pieces: list[Segment | int]  # an int stands for that many thinking characters left out
    note: str | None  # why the trace is not marked (trace_note)


@dataclass(frozen=True)
class RunTraces:
    label: str
    link: str  # the item's page in m1 view, this run's column
    points: list[PointTrace]


@dataclass(frozen=True)
class SampledItem:
    uid: str
    source: str
    question: str
    options: dict[str, str]
    gold: str
    why: str  # "flipped …" or "" for an item chosen by order
    runs: list[RunTraces] = field(default_factory=list)


def item_sample(runs: Sequence[RunResult], mode: str, limit: int = ITEMS_SHOWN) -> list[SampledItem]:
    chosen = _chosen(runs, mode, limit)
    if not chosen:
        return []
    items = {uid: item for run in runs for uid, item in _items(run.path, set(chosen)).items()}
    sampled = []
    for uid, why in chosen.items():
        item = items.get(uid)
        if item is None:
            continue
        sampled.append(SampledItem(uid, item.get("source", ""), item.get("question", ""), item.get("options", {}),
                                   item.get("answer_idx", ""), why))
    uids = {item.uid for item in sampled}
    for run in runs:
        found: dict[str, list[PointTrace]] = {}
        for point in run.points:
            folder = run.path / "points" / point.key
            rows = _rows(folder / "predictions.jsonl", uids)
            scored = _rows(folder / "scored.jsonl", uids)
            for uid, row in rows.items():
                found.setdefault(uid, []).append(_point_trace(point.key, row, scored.get(uid), mode))
        for item in sampled:
            if item.uid in found:
                item.runs.append(RunTraces(run.label, item_url(item.uid, runs=[run.view_name]), found[item.uid]))
    return sampled


def _chosen(runs: Sequence[RunResult], mode: str, limit: int) -> dict[str, str]:
    """uid -> why it is shown: flipped items first, then the first run's items in order."""
    chosen: dict[str, str] = {}
    for run in runs:
        for flips in run.flips:
            for item in flips.mode(mode).flipped:
                if len(chosen) < limit and item.uid not in chosen:
                    direction = item.direction.replace("_to_", " → ").replace("_", " ")
                    chosen[item.uid] = f"flipped {direction} from {flips.from_} to {flips.to} ({run.label})"
    if runs and len(chosen) < limit:
        for line in _lines(runs[0].path / "items.jsonl"):
            uid = _decoded(line).get("uid")
            if isinstance(uid, str) and uid not in chosen:
                chosen[uid] = ""
                if len(chosen) == limit:
                    break
    return chosen


def _items(root: Path, uids: set[str]) -> dict[str, dict[str, Any]]:
    found = {}
    for line in _lines(root / "items.jsonl"):
        if any(json.dumps(uid, ensure_ascii=False) in line for uid in uids - found.keys()):
            item = _decoded(line)
            if item.get("uid") in uids:
                found[item["uid"]] = item
    return found


def _rows(path: Path, uids: set[str]) -> dict[str, dict[str, Any]]:
    """The first sample's row of each uid in a JSON-lines file (lines cut short or corrupt skipped)."""
    wanted = {uid: json.dumps(uid, ensure_ascii=False) for uid in uids}
    found: dict[str, dict[str, Any]] = {}
    for line in _lines(path):
        for uid, quoted in wanted.items():
            if uid not in found and quoted in line:
                row = _decoded(line)
                if row.get("uid") == uid and row.get("sample", 0) == 0:
                    found[uid] = row
        if len(found) == len(wanted):
            break
    return found


def _point_trace(key: str, row: dict[str, Any], scored: dict[str, Any] | None, mode: str) -> PointTrace:
    score = scored or {}
    correct = score.get(f"{mode}_correct")
    return PointTrace(key, score.get(f"{mode}_letter"), score.get(f"{mode}_rule"),
                      correct if isinstance(correct, bool) else None, _count(row, "thinking_tokens"),
                      _count(row, "answer_tokens"), row.get("thinking_end"), _cut(segments(row)), trace_note(row))


def _cut(found: list[Segment], head: int = TRACE_HEAD, tail: int = TRACE_TAIL) -> list[Segment | int]:
    """The segments with the thinking between its first `head` and last `tail` characters left out
    (an int in their place says how many); a probe or exit mark in the cut stands right after it."""
    total = sum(len(s.text) for s in found if s.part == "thinking")
    if total <= head + tail:
        return list(found)
    cut_from, cut_to = head, total - tail
    pieces: list[Segment | int] = []
    position, marked = 0, False
    for segment in found:
        if segment.part != "thinking":
            pieces.append(segment)
            continue
        start, end = position, position + len(segment.text)
        position = end
        if not segment.text:  # a probe or the exit
            if cut_from <= start < cut_to and not marked:
                pieces.append(cut_to - cut_from)
                marked = True
            pieces.append(segment)
            continue
        if start < cut_from:
            pieces.append(replace(segment, text=segment.text[: cut_from - start]))
        if end > cut_from and not marked:
            pieces.append(cut_to - cut_from)
            marked = True
        if end > cut_to:
            pieces.append(replace(segment, text=segment.text[max(0, cut_to - start):]))
    return pieces


def _count(row: dict[str, Any], field_name: str) -> int:
    value = row.get(field_name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _lines(path: Path) -> Iterator[str]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from handle


def _decoded(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
