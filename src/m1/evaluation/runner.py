"""`m1 eval`: run a model over the evaluation suite across a grid of thinking budgets, score it.

    m1 eval configs/eval/budget_sweep.yaml per_source=10 "grid.max_thinking_tokens=[128,512]"
    m1 eval configs/eval/adaptive.yaml per_source=10      # early exit beside fixed budgets

Top to bottom: pick the items (seeded, stratified per source), open the run directory (or reopen
it to resume), load the backend once, then for each grid point generate whatever (item, sample)
is not finished yet, each sample with its own seed, appending each prediction the moment it is
done, and finally score every point in both modes and write the metrics; a grid with early exit
also gets each early-exit point compared with its fixed-budget point and its answer-settling
curves (`m1.evaluation.early_exit`). Killing the process at any moment and running the same
command again finishes the run with the same predictions and metrics as an uninterrupted one
(wall time aside: a call cut short by the kill is not counted).

Points with several samples per item are scored over all their samples for now (each sample
counts as one prediction); the comparisons with early exit read sample 0 of every item.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from m1.console import make_console
from m1.data.errors import DataError
from m1.data.items import MCQItem
from m1.data.suite import SUITE_FILE_NAME, load_suite, sample_per_source, shared_data_dir
from m1.engine import load_backend
from m1.engine.controller import GenerationRecord
from m1.engine.prompt import render_prompt
from m1.evaluation.config import EvalConfig, GridPoint
from m1.evaluation.early_exit import compare_with_fixed, settling_curves
from m1.evaluation.store import RunStore
from m1.scoring import ScoredRow, build_report, prediction_from_record, score_predictions

BUNDLED_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "m1_sample_eval.json"


def resolve_data(config: EvalConfig) -> tuple[Path, str]:
    """The evaluation file to use and a sentence saying which it is."""
    if config.data:
        return Path(config.data), f"evaluation data: {config.data}"
    shared = shared_data_dir()
    if shared is not None and (shared / "eval" / SUITE_FILE_NAME).exists():
        path = shared / "eval" / SUITE_FILE_NAME
        return path, f"evaluation data: the real m1 suite at {path}"
    return BUNDLED_SAMPLE, ("the real suite (../shared/data) was not found, so this run uses the small sample set "
                            "bundled with m1; pass data=FILE for a real benchmark")


def select_items(config: EvalConfig, path: Path) -> list[MCQItem]:
    suite = load_suite(path, sources=config.sources)
    if config.per_source:
        suite = sample_per_source(suite, config.per_source, config.seed)
    items = [item for items in suite.values() for item in items]
    return items[: config.limit] if config.limit else items


def pending_predictions(point: GridPoint, items: list[MCQItem],
                        finished: set[tuple[str, int]]) -> list[tuple[MCQItem, int]]:
    """The (item, sample) pairs of a point still to generate, in item order, then sample order."""
    return [(item, sample) for item in items for sample in range(point.samples) if (item.uid, sample) not in finished]


def prediction_row(item: MCQItem, point: GridPoint, record: GenerationRecord, seconds: float,
                   sample: int = 0) -> dict[str, Any]:
    """One line of predictions.jsonl: the `m1 score` fields, then the engine's full account (with
    early exit, also the answer trajectory and what the probes cost; with calibration, the answer
    read; with several samples, the sample's number; rows without stay as they were)."""
    row = {
        "uid": item.uid, "source": item.source, "options": item.options, "answer_idx": item.answer_idx,
        "reply": record.reply, "budget": point.budget, "extensions": point.extensions,
        "thinking": record.thinking, "answer": record.answer,
        "thinking_tokens": record.thinking_tokens, "answer_tokens": record.answer_tokens,
        "inserted_tokens": record.inserted_tokens, "extensions_used": record.extensions_used,
        "thinking_end": record.thinking_end, "answer_end": record.answer_end, "error": record.error,
        "batch_seconds": round(seconds, 3),
    }
    if record.probes is not None:
        row |= {"probes": record.probes, "probe_tokens": record.probe_tokens,
                "probe_seconds": round(record.probe_seconds, 6), "exit_rule": record.exit_rule}
    if record.answer_read is not None:
        row["answer_read"] = record.answer_read
    if point.samples > 1:
        row["sample"] = sample
    return row


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


class TokensPerSecond(ProgressColumn):
    def __init__(self, counter: Callable[[], float]):
        super().__init__()
        self.counter = counter

    def render(self, task: Any) -> Text:
        return Text(f"{self.counter():.0f} tok/s", style="cyan")


def run_eval(config: EvalConfig, console: Console | None = None) -> dict[str, Any]:
    console = console or make_console()
    data_path, data_note = resolve_data(config)
    console.print(data_note, markup=False)
    items = select_items(config, data_path)
    if not items:
        raise DataError.at(data_path, "", "sources", "no items selected", "check sources=, per_source= and limit=")
    store = RunStore.open(config)
    store.save_items(items)
    points = config.grid_points()
    todo = {point.key: pending_predictions(point, items, store.finished(point)) for point in points}
    remaining = sum(len(v) for v in todo.values())
    console.print(f"run: {store.root}  ({len(items)} items × {len(points)} grid points, "
                  f"{remaining} generations to do)", markup=False)

    if remaining:
        backend = load_backend(config.backend, config.model, **config.backend_options)
        generate_missing(config, store, backend, points, todo, console)
    summary = score_run(config, store, points, items)
    store.write_summary(summary)
    return summary


def generate_missing(config: EvalConfig, store: RunStore, backend: Any, points: list[GridPoint],
                     todo: dict[str, list[tuple[MCQItem, int]]], console: Console) -> None:
    started, generated = time.monotonic(), [0]
    rate = lambda: generated[0] / max(time.monotonic() - started, 1e-6)  # noqa: E731
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TokensPerSecond(rate),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        tasks = {p.key: progress.add_task(p.key, total=len(todo[p.key]) + 0) for p in points}
        for point in points:
            pending = todo[point.key]
            if not pending:
                continue
            store.repair(point)
            policy = config.policy_for(point)
            prompts = [render_prompt(backend.tokenizer, item.question, item.options, policy, suffix=point.suffix)
                       for item, _ in pending]
            # One policy per prediction: a sample's seed comes from (run seed, uid, sample) alone, so
            # what it draws depends neither on its batch mates nor on what was finished before.
            policies = [config.sample_policy(policy, item.uid, sample) for item, sample in pending]
            batch_start = [time.monotonic()]

            def on_done(index: int, record: GenerationRecord, point: GridPoint = point, pending=pending) -> None:
                item, sample = pending[index]
                store.append_prediction(point, prediction_row(item, point, record,
                                                              time.monotonic() - batch_start[0], sample))
                generated[0] += record.thinking_tokens + record.answer_tokens
                progress.advance(tasks[point.key])

            # The option letters are what early exit's probes and the answer read look at.
            backend.generate(prompts, policies, on_done=on_done, choices=[tuple(item.options) for item, _ in pending])
            store.record_timing(point, time.monotonic() - batch_start[0], len(pending))


def score_run(config: EvalConfig, store: RunStore, points: list[GridPoint], items: list[MCQItem]) -> dict[str, Any]:
    """Score every grid point in both modes; the summary is what reports read."""
    wanted = {item.uid for item in items}
    order = [(item.uid, item.source) for item in items]
    rows_by_key: dict[str, dict[str, dict[str, Any]]] = {}
    scored_by_key: dict[str, dict[str, dict[str, Any]]] = {}
    summary_points = []
    for point in points:
        rows = [r for r in store.predictions(point) if r["uid"] in wanted]
        expected = len(wanted) * point.samples
        if len(rows) < expected:
            raise DataError.at(store.predictions_path(point), "", "",
                               f"{expected - len(rows)} of {expected} predictions missing",
                               "run the same command again to finish the run")
        where = store.predictions_path(point)
        # The scorers join the two modes by uid: each sample of an item is its own prediction there.
        prediction_rows = [prediction_from_record(where, number, _scoring_record(point, row))
                           for number, row in enumerate(rows, start=1)]
        report = build_report(prediction_rows)
        strict = score_predictions(prediction_rows, "strict")
        reference = score_predictions(prediction_rows, "reference")
        scored = [scored_row(point, row, s, r) for row, s, r in zip(rows, strict, reference)]
        wall = store.wall_seconds(point)
        usage = token_usage(rows) | {"wall_seconds": wall, "wall_seconds_per_item": wall / len(wanted)}
        rows_by_key[point.key] = {row["uid"]: row for row in rows if row.get("sample", 0) == 0}
        scored_by_key[point.key] = {row["uid"]: row for row in scored if row.get("sample", 0) == 0}
        adaptive = {} if point.early_exit is None else {
            "early_exit": point.early_exit.model_dump(mode="json"),
            "settling": settling_curves(point, rows_by_key[point.key], scored_by_key[point.key], order)}
        metrics = {"point": point.key, "budget": point.budget, "extensions": point.extensions,
                   "suffix": point.suffix, "samples": point.samples, **report.to_dict(), "usage": usage, **adaptive}
        store.write_point_results(point, scored, metrics)
        summary_points.append({
            "point": point.key, "budget": point.budget, "extensions": point.extensions, "suffix": point.suffix,
            "samples": point.samples,
            "strict": report.modes["strict"].to_dict(), "reference": report.modes["reference"].to_dict(),
            "disagreement": report.disagreement.count, "usage": usage, **adaptive,
        })
    summary = {"run": store.root.name, "model": config.model, "backend": config.backend, "preset": config.preset,
               "items": len(items), "points": summary_points}
    comparisons = compare_with_fixed(points, rows_by_key, scored_by_key, order, seed=config.seed)
    return summary if comparisons is None else summary | {"early_exit": comparisons}


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
        "budget_hit_rate": sum(r["thinking_end"] == "budget_reached" for r in rows) / len(rows) if rows else 0.0,
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
