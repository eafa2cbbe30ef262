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

A one-sample point beside a several-sample point with the same settings is the latter's sample 0
(the same policy and seeds), so it is copied from there rather than drawn again. Scoring, and the
compute-optimal sections of the summary, are `m1.evaluation.results`.
"""

from __future__ import annotations

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
from m1.engine.prompt import render_prompt, user_message
from m1.evaluation.config import EvalConfig, GridPoint
from m1.evaluation.domains import load_labels
from m1.evaluation.results import score_run
from m1.evaluation.store import RunStore

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


# The chat backend's account of each reply, kept in its prediction row (GenerationRecord.api).
API_ROW_FIELDS = ("reported_thinking_tokens", "recounted_thinking_tokens", "thinking_count", "thinking_closed",
                  "finish_reason", "cost", "usage", "cached")


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
        "batch_seconds": round(seconds, 3), "spans": record.spans,
    }
    if record.probes is not None:
        row |= {"probes": record.probes, "probe_tokens": record.probe_tokens,
                "probe_seconds": round(record.probe_seconds, 6), "exit_rule": record.exit_rule}
    if record.answer_read is not None:
        row["answer_read"] = record.answer_read
    if point.samples > 1:
        row["sample"] = sample
    if point.effort is not None:
        row["effort"] = point.effort
    if record.api is not None:  # a native-budget API's account (the chat backend), for the budget audit
        row |= {name: record.api.get(name) for name in API_ROW_FIELDS}
    return row


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
    if config.domains is not None:
        load_labels(config.domains)  # a bad labels file is named now, not after every generation
    store = RunStore.open(config)
    store.save_items(items)
    points = config.grid_points()
    todo = {point.key: pending_predictions(point, items, store.finished(point)) for point in points}
    # A one-sample point is sample 0 of its several-sample twin: taken from there, not drawn again.
    copied = {point.key: twin for point in points if (twin := config.drawn_with(point)) is not None}
    drawn = [point for point in points if point.key not in copied]
    remaining = sum(len(todo[point.key]) for point in drawn)
    console.print(f"run: {store.root}  ({len(items)} items × {len(points)} grid points, "
                  f"{remaining} generations to do)", markup=False)
    for key, twin in copied.items():
        if todo[key]:
            console.print(f"{key}: sample 0 of {twin.key}, not drawn again (the same seeds)", markup=False)

    if remaining:
        options = dict(config.backend_options)
        if config.backend == "chat":
            options.setdefault("cache_dir", store.root / "chat-cache")  # a rerun of the run pays nothing
        backend = load_backend(config.backend, config.model, **options)
        generate_missing(config, store, backend, drawn, todo, console)
    for point in points:
        if point.key in copied and todo[point.key]:
            copy_first_samples(store, copied[point.key], point, todo[point.key])
    summary = score_run(config, store, points, items)
    store.write_summary(summary)
    return summary


def copy_first_samples(store: RunStore, twin: GridPoint, point: GridPoint,
                       pending: list[tuple[MCQItem, int]]) -> None:
    """Write `point`'s missing rows as sample 0 of `twin` (without the sample field), and its time at
    the twin's rate per generation."""
    first = {row["uid"]: row for row in store.predictions(twin) if row["sample"] == 0}
    found = [item for item, _ in pending if item.uid in first]
    store.repair(point)
    for item in found:
        store.append_prediction(point, {k: v for k, v in first[item.uid].items() if k != "sample"})
    rate = store.seconds_per_generation(twin)
    if rate is not None and found:
        store.record_timing(point, rate * len(found), len(found))


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
            chat = getattr(backend, "chat", False)  # an API that takes chat messages and thinks on its own
            prompts = [[{"role": "user", "content": user_message(item.question, item.options, point.suffix)}] if chat
                       else render_prompt(backend.tokenizer, item.question, item.options, policy, suffix=point.suffix)
                       for item, _ in pending]
            native = {"effort": point.effort, "send_budget": point.budget is not None} if chat else {}
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
            backend.generate(prompts, policies, on_done=on_done, choices=[tuple(item.options) for item, _ in pending],
                             **native)
            store.record_timing(point, time.monotonic() - batch_start[0], len(pending))
