"""Scoring a finished run: every grid point in both modes, then the run summary (metrics.json).

    summary = score_run(config, store, config.grid_points(), items)     # m1 eval calls it last

Per point: each prediction scored strict and reference (`m1.scoring`), scored.jsonl (letters,
rules, tokens, the answer read's probability of the extracted letter), token use and wall time,
and the budget audit (`m1.evaluation.audit`: how the thinking budget was honoured, per source too).
A point with N samples is summarised by its majority vote (one answer per item, so its intervals
count items); one sample's accuracy and every vote are policies of the summary. Then the run's
compute-optimal sections (`m1.evaluation.analysis`): every policy's accuracy against its cost,
the Pareto frontier and the cheapest policy within 1 point of the best (overall, per source, per
MeSH domain when the run has a labels file), the answer flips between neighbouring points, and
each point's calibration; and with early exit, each early-exit point against its fixed budget
(`m1.evaluation.early_exit`), reading sample 0 of every item.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.evaluation.analysis import analyse, point_votes
from m1.evaluation.audit import audit_point
from m1.evaluation.config import EvalConfig, GridPoint
from m1.evaluation.domains import load_labels
from m1.evaluation.early_exit import compare_with_fixed, settling_curves
from m1.evaluation.store import RunStore
from m1.evaluation.votes import PointVotes
from m1.scoring import (MODES, ScoredRow, ScoreReport, disagreement, mode_metrics, prediction_from_record,
                        score_predictions)


def generation_tokens(row: dict[str, Any]) -> int:
    """What one generation cost in tokens: thinking, answer and early exit's probes."""
    return row["thinking_tokens"] + row["answer_tokens"] + row.get("probe_tokens", 0)


def read_tokens(row: dict[str, Any]) -> int:
    """Tokens the answer read cost beyond the generation (none when it reused an early-exit probe)."""
    read = row.get("answer_read")
    return 0 if not read or read.get("reused") else read["tokens"]


def answer_confidence(row: dict[str, Any], letter: str | None) -> float | None:
    """The probability the answer read gave `letter` (a mode's extracted letter): None without a
    read of the letters, 0.0 when the scorer found no letter."""
    letters = (row.get("answer_read") or {}).get("letters")
    if not letters:
        return None
    return 0.0 if letter is None else letters.get(letter, 0.0)


def score_run(config: EvalConfig, store: RunStore, points: list[GridPoint], items: list[MCQItem]) -> dict[str, Any]:
    """Score every grid point in both modes; the summary is what reports read."""
    wanted = {item.uid for item in items}
    order = [(item.uid, item.source) for item in items]
    rows_by_key: dict[str, dict[str, dict[str, Any]]] = {}
    scored_by_key: dict[str, dict[str, dict[str, Any]]] = {}
    summary_points, scored_lists, votes, walls = [], {}, {}, {}
    for point in points:
        rows = [r for r in store.predictions(point) if r["uid"] in wanted]
        expected = len(wanted) * point.samples
        if len(rows) < expected:
            done = {(row["uid"], row.get("sample", 0)) for row in rows}
            uid, sample = next((item.uid, s) for item in items for s in range(point.samples) if (item.uid, s) not in done)
            first = f"uid {uid}" + (f", sample {sample}" if point.samples > 1 else "")
            raise DataError.at(store.predictions_path(point), "", "",
                               f"{expected - len(rows)} of {expected} predictions missing (the first: {first})",
                               "run the same command again to finish the run")
        where = store.predictions_path(point)
        # The scorers join the two modes by uid: each sample of an item is its own prediction there.
        prediction_rows = [prediction_from_record(where, number, _scoring_record(point, row))
                           for number, row in enumerate(rows, start=1)]
        strict = score_predictions(prediction_rows, "strict")
        reference = score_predictions(prediction_rows, "reference")
        scored = scored_lists[point.key] = [scored_row(point, row, s, r) for row, s, r in zip(rows, strict, reference)]
        votes[point.key] = point_votes(point, scored)
        # Both modes were scored above: the report is built from those rows, not by scoring again.
        report = (ScoreReport(items=len(rows), modes={"reference": mode_metrics(reference, "reference"),
                                                       "strict": mode_metrics(strict, "strict")},
                              disagreement=disagreement(reference, strict))
                  if point.samples == 1 else voted_report(votes[point.key]))
        per_generation = store.seconds_per_generation(point)
        # Per item: the time of its generations at the point's measured rate (a resumed run timed
        # only the calls that finished, and counted only their generations).
        per_item = None if per_generation is None else per_generation * point.samples
        usage = token_usage(rows) | {"wall_seconds": None if per_item is None else per_item * len(wanted),
                                     "wall_seconds_per_item": per_item}
        walls[point.key] = usage["wall_seconds"]
        rows_by_key[point.key] = {row["uid"]: row for row in rows if row.get("sample", 0) == 0}
        scored_by_key[point.key] = {row["uid"]: row for row in scored if row.get("sample", 0) == 0}
        adaptive = {} if point.early_exit is None else {
            "early_exit": point.early_exit.model_dump(mode="json"),
            "settling": settling_curves(point, rows_by_key[point.key], scored_by_key[point.key], order)}
        audit = audit_point(rows, point.budget)
        metrics = {"point": point.key, "budget": point.budget, "extensions": point.extensions,
                   "suffix": point.suffix, "samples": point.samples, **report.to_dict(), "usage": usage, **adaptive,
                   "audit": audit}
        store.write_point_results(point, scored, metrics)
        summary_points.append({
            "point": point.key, "budget": point.budget, "extensions": point.extensions, "suffix": point.suffix,
            "samples": point.samples,
            "strict": report.modes["strict"].to_dict(), "reference": report.modes["reference"].to_dict(),
            "disagreement": report.disagreement.count, "usage": usage, **adaptive, "audit": audit,
        })
    summary = {"run": store.root.name, "model": config.model, "backend": config.backend, "preset": config.preset,
               "items": len(items), "points": summary_points}
    groupings = {"sources": {item.uid: item.source for item in items}}
    if config.domains is not None:
        labels = load_labels(config.domains)
        groupings["domains"] = {uid: labels.names[uid] for uid in wanted if uid in labels.names}
        summary["domains"] = labels.coverage(item.uid for item in items)
    sections = analyse(points, scored_lists, {key: wall for key, wall in walls.items() if wall is not None},
                       groupings, votes=votes)
    for entry in summary_points:
        entry["calibration"] = sections.calibration[entry["point"]]
    summary |= sections.to_dict() | {"calibration_target": sections.target}
    comparisons = compare_with_fixed(points, rows_by_key, scored_by_key, order, seed=config.seed)
    return summary if comparisons is None else summary | {"early_exit": comparisons}


def voted_report(votes: PointVotes) -> ScoreReport:
    """A point with several samples is summarised by its majority vote, one answer per item: so its
    intervals count items, not samples (one sample's accuracy and the other votes are policies)."""
    modes = {mode: [ScoredRow(item.uid, item.source, item.gold, item.letter,
                              "majority_vote" if item.letter is not None else "no_answer", item.correct == 1.0)
                    for item in votes.results[mode]["majority"]] for mode in MODES}
    return ScoreReport(items=len(modes["strict"]),
                       modes={mode: mode_metrics(rows, mode) for mode, rows in modes.items()},
                       disagreement=disagreement(modes["reference"], modes["strict"]))


def _scoring_record(point: GridPoint, row: dict[str, Any]) -> dict[str, Any]:
    return row if point.samples == 1 else row | {"uid": f"{row['uid']}#{row['sample']}"}


def scored_row(point: GridPoint, row: dict[str, Any], strict: ScoredRow, reference: ScoredRow) -> dict[str, Any]:
    """One line of scored.jsonl: a prediction's letter, rule and correctness in both modes, the
    answer read's probability of each letter, the generation's tokens, and the read's own tokens
    (instrumentation: counted only where a policy uses the read, as the weighted vote does)."""
    sample = {"sample": row["sample"]} if point.samples > 1 else {}
    return {"uid": row["uid"], **sample, "source": row["source"], "answer_idx": row["answer_idx"],
            "strict_letter": strict.letter, "strict_rule": strict.rule, "strict_correct": strict.correct,
            "reference_letter": reference.letter, "reference_rule": reference.rule,
            "reference_correct": reference.correct, "tokens": generation_tokens(row), "read_tokens": read_tokens(row),
            "confidence_strict": answer_confidence(row, strict.letter),
            "confidence_reference": answer_confidence(row, reference.letter)}


def budget_hit(row: Mapping[str, Any]) -> bool:
    """Whether a predictions row's thinking reached its budget (what budget_hit_rate counts)."""
    return row.get("thinking_end") == "budget_reached"


def token_usage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Token use over a point's predictions (every sample counts); total_tokens_mean is per item:
    all its samples' thinking, answer and probe tokens."""
    thinking = [r["thinking_tokens"] for r in rows]
    per_item: dict[str, int] = {}
    for row in rows:
        per_item[row["uid"]] = per_item.get(row["uid"], 0) + generation_tokens(row)
    return {
        "thinking_tokens_mean": statistics.fmean(thinking) if thinking else 0.0,
        "thinking_tokens_median": statistics.median(thinking) if thinking else 0.0,
        "thinking_tokens_max": max(thinking, default=0),
        "answer_tokens_mean": statistics.fmean(r["answer_tokens"] for r in rows) if rows else 0.0,
        "inserted_tokens_mean": statistics.fmean(r["inserted_tokens"] for r in rows) if rows else 0.0,
        "extensions_used_mean": statistics.fmean(r["extensions_used"] for r in rows) if rows else 0.0,
        "budget_hit_rate": sum(map(budget_hit, rows)) / len(rows) if rows else 0.0,
        "thinking_end": {end: sum(r["thinking_end"] == end for r in rows) for end in sorted({str(r["thinking_end"]) for r in rows})},
        "errors": sum(1 for r in rows if r.get("error")),
        "thinking_tokens": thinking,
        "total_tokens_mean": statistics.fmean(per_item.values()) if per_item else 0.0,
    } | early_exit_usage(rows)


def early_exit_usage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What probing cost and how often it ended thinking (only for rows that carry probes)."""
    probed = [r for r in rows if "probes" in r]
    if not probed:
        return {}
    return {
        "probes_mean": statistics.fmean(len(r["probes"]) for r in probed),
        "probe_tokens_mean": statistics.fmean(r["probe_tokens"] for r in probed),
        "probe_seconds_mean": statistics.fmean(r["probe_seconds"] for r in probed),
        "early_exit_rate": sum(r["thinking_end"] == "early_exit" for r in probed) / len(probed),
    }
