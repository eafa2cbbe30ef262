"""What early exit bought in a run: each early-exit grid point against the fixed-budget point of
the same budget, Wait count and prompt suffix, on the same items, and how soon answers settled.

    comparisons = compare_with_fixed(points, rows, scored, order, seed=42)   # into metrics.json
    curves = settling_curves(point, rows[point.key], scored[point.key], order)

`rows` and `scored` map a point's key to {uid: its predictions.jsonl row} and {uid: its scored
row}; `order` lists (uid, source) in item order, so every table comes out in the same order. Per
source and over all items, a comparison gives mean thinking tokens in both arms, the tokens saved,
how often thinking ended early, and the paired accuracy difference (early exit − fixed) in both
grading modes with its interval and p-value (`m1.evaluation.paired`).

The settling curve reads each item's probe trajectory (`probes` in its prediction row): at t
thinking tokens, an item has settled when the last probe at or before t already gave the letter
its reply was finally graded as, or when its thinking was over by t (its answer is then final).
Observe-mode points (`observe: true`) probe the whole thinking without exiting, so they give the
full curve; exiting points stop probing once they exit.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from m1.evaluation.config import GridPoint
from m1.evaluation.paired import METHOD, paired_difference
from m1.scoring import MODES

SETTLING_STEPS = 64  # the curve is read at 0 and at this many even steps up to the budget

Rows = dict[str, dict[str, Any]]


def compare_with_fixed(points: Sequence[GridPoint], rows: dict[str, Rows], scored: dict[str, Rows],
                       order: Sequence[tuple[str, str]], *, seed: int) -> dict[str, Any] | None:
    """Every early-exit point beside its fixed-budget point; None when the grid has no early exit.

    An early-exit point whose fixed point is not in the grid is listed with `fixed: null` and no
    numbers, so a reader sees why it has no comparison."""
    exiting = [point for point in points if point.early_exit is not None]
    if not exiting:
        return None
    keys = {point.key for point in points}
    everything, groups = [uid for uid, _ in order], _groups(order)
    comparisons = []
    for point in exiting:
        entry: dict[str, Any] = {"point": point.key, "fixed": None, "budget": point.budget,
                                 "extensions": point.extensions, "suffix": point.suffix,
                                 "early_exit": point.early_exit.model_dump(mode="json")}
        fixed = point.fixed.key
        if fixed in keys:
            arms = (rows[point.key], rows[fixed], scored[point.key], scored[fixed])
            entry |= {"fixed": fixed, "overall": _compare(everything, *arms, seed),
                      "sources": [{"source": source} | _compare(uids, *arms, seed) for source, uids in groups.items()]}
        comparisons.append(entry)
    return {"method": METHOD, "comparisons": comparisons}


def _groups(order: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for uid, source in order:
        groups.setdefault(source, []).append(uid)
    return groups


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _compare(uids: Sequence[str], exit_rows: Rows, fixed_rows: Rows, exit_scored: Rows, fixed_scored: Rows,
             seed: int) -> dict[str, Any]:
    """One group of items (a source, or all): thinking tokens in both arms and the paired accuracy."""
    exit_tokens = _mean([exit_rows[uid]["thinking_tokens"] for uid in uids])
    fixed_tokens = _mean([fixed_rows[uid]["thinking_tokens"] for uid in uids])
    saved = None if not fixed_tokens or exit_tokens is None else 100 * (1 - exit_tokens / fixed_tokens)
    result: dict[str, Any] = {
        "items": len(uids),
        "thinking_tokens_fixed": fixed_tokens,
        "thinking_tokens_early_exit": exit_tokens,
        "tokens_saved_pct": saved,
        "early_exit_rate": _mean([exit_rows[uid]["thinking_end"] == "early_exit" for uid in uids]),
        "probe_tokens_mean": _mean([exit_rows[uid].get("probe_tokens", 0) for uid in uids]),
    }
    for mode in MODES:
        difference = paired_difference([exit_scored[uid][f"{mode}_correct"] for uid in uids],
                                       [fixed_scored[uid][f"{mode}_correct"] for uid in uids], seed=seed)
        result[mode] = None if difference is None else difference.to_dict()
    return result


def settling_curves(point: GridPoint, rows: Rows, scored: Rows, order: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The share of items settled at each step of thinking tokens, over all items and per source:
    `{"thinking_tokens": [...], "items": {...}, "strict": {"overall": [...], "sources": {name: [...]}}, ...}`."""
    top = point.budget or max((row["thinking_tokens"] for row in rows.values()), default=0)
    steps = sorted({round(top * i / SETTLING_STEPS) for i in range(SETTLING_STEPS + 1)})
    uids, groups = [uid for uid, _ in order], _groups(order)
    curves: dict[str, Any] = {"thinking_tokens": steps, "observe": bool(point.early_exit and point.early_exit.observe),
                              "items": {"overall": len(uids), "sources": {name: len(g) for name, g in groups.items()}}}
    for mode in MODES:
        settled = {uid: _settled_at(rows[uid], scored[uid][f"{mode}_letter"], steps) for uid in uids}

        def share(group: Sequence[str]) -> list[float]:
            return [round(sum(settled[uid][i] for uid in group) / len(group), 4) for i in range(len(steps))]

        curves[mode] = {"overall": share(uids) if uids else [],
                        "sources": {name: share(group) for name, group in groups.items()}}
    return curves


def difference_text(entry: dict[str, Any] | None) -> str:
    """A paired difference as people read it: "+2.5 (-1.0 to +6.0)" in accuracy points, "—" without items."""
    if entry is None:
        return "—"
    return f"{100 * entry['difference']:+.1f} ({100 * entry['ci_low']:+.1f} to {100 * entry['ci_high']:+.1f})"


def _settled_at(row: dict[str, Any], final: str | None, steps: Sequence[int]) -> list[bool]:
    """At each step: thinking already over, or the latest probe so far already gave the final answer."""
    probes = sorted(row.get("probes") or [], key=lambda probe: probe["thinking_tokens"])
    marks, latest, position = [], None, 0
    for step in steps:
        while position < len(probes) and probes[position]["thinking_tokens"] <= step:
            latest, position = probes[position]["answer"], position + 1
        marks.append(row["thinking_tokens"] <= step or (latest is not None and latest == final))
    return marks
