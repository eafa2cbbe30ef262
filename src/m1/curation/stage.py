"""Curation stages as small objects, and the one base that counts, records, resumes and writes.

A stage implements one method; `run_stage` does everything else the same way for all of them:

    class ShortQuestionFilter(RowStage):
        name = "short-question"
        def process(self, row):
            return Drop("question too short") if len(row["question"]) < 20 else row

    summary = run_stage(ShortQuestionFilter(), rows, Path("runs/curate/m1k/03_short-question"),
                        upstream="<fingerprint of the previous stage>")

Kinds of stage:
- `RowStage.process(row) -> row | Drop`: decides each row on its own (filters, and mappers that
  call a model). Results are appended to disk batch by batch, so a killed run resumes with the
  rows it had not finished; `workers > 1` runs `process` in threads (for API clients).
  `process_batch` may be overridden instead when a whole batch is cheaper at once (a local engine).
- `SetStage.process_all(rows) -> [row | Drop, ...]`: needs the whole input (dedup, select); the
  answer is aligned with the input, one outcome per row, and is written when complete.

A stage directory holds:
    kept.jsonl       rows that go on to the next stage
    dropped.jsonl    {"uid", "reason", "detail", "row"}: every dropped row with a readable reason
                     (the row as the stage annotated it, where it did)
    manifest.json    fingerprint, rows in/out, drop counts by reason, seconds, finished time
    fingerprint      the fingerprint the partial files belong to (written first)

The fingerprint chains the stage's name, version and parameters with the upstream fingerprint, so
changing any earlier stage's config redoes this stage instead of mixing old rows with new ones.
Paid-for work (teacher and model replies) is cached by request elsewhere, so redoing is cheap.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from m1.data.errors import DataError
from m1.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl_tolerant

Row = dict[str, Any]

KEPT_FILE, DROPPED_FILE, MANIFEST_FILE, FINGERPRINT_FILE = "kept.jsonl", "dropped.jsonl", "manifest.json", "fingerprint"


@dataclass(frozen=True)
class Drop:
    """Why a row leaves the pipeline: a short reason that is counted, and an optional detail.

    `row`, when given, is the row as the stage annotated it (a base model's reply, the graders'
    verdicts); dropped.jsonl keeps it instead of the input row, so a reader sees why, and a
    report computed from the files counts dropped rows as fully as kept ones.
    """

    reason: str
    detail: str | None = None
    row: Row | None = None


Outcome = Row | Drop


class Stage:
    """Common identity of every stage: a short noun name, a version and the parameters that matter."""

    name: ClassVar[str] = "stage"
    # Bump when the stage's behaviour changes, so that earlier outputs are not reused.
    version: ClassVar[str] = "1"

    def params(self) -> dict[str, Any]:
        """Everything that changes this stage's output (a config's fields); part of the fingerprint."""
        return {}

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        """Extra figures for the manifest once the stage finishes.

        Figures about rows are computed from `kept` (rows) and `dropped` (entries of
        dropped.jsonl: {"uid", "reason", "detail", "row"}), the stage's files: every row,
        whichever process judged it), never from counters of this process, which a resumed run
        would start from zero. Client figures (cache hits, tokens paid) are about this process.
        """
        return {}

    def fingerprint(self, upstream: str) -> str:
        blob = json.dumps([self.name, self.version, self.params(), upstream], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class RowStage(Stage):
    """A stage that decides each row independently; resumable row by row."""

    batch_size: int = 64
    workers: int = 1

    def process(self, row: Row) -> Outcome:
        raise NotImplementedError

    def process_batch(self, rows: Sequence[Row]) -> list[Outcome]:
        if self.workers <= 1 or len(rows) <= 1:
            return [self.process(row) for row in rows]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=self.name) as pool:
            return list(pool.map(self.process, rows))


class SetStage(Stage):
    """A stage that needs all its input at once; returns one outcome per input row, in order."""

    def process_all(self, rows: list[Row]) -> list[Outcome]:
        raise NotImplementedError


@dataclass
class StageSummary:
    """What `m1 curate status` shows for one stage."""

    name: str
    state: str  # "done", "partial", "pending"
    rows_in: int | None
    rows_out: int
    dropped: dict[str, int]
    seconds: float | None = None
    fingerprint: str | None = None
    extra: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "rows_in": self.rows_in, "rows_out": self.rows_out,
                "dropped": self.dropped, "seconds": self.seconds, "fingerprint": self.fingerprint,
                "extra": self.extra or {}}


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / MANIFEST_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def kept_rows(stage_dir: Path) -> list[Row]:
    """The finished output of a stage (one row per uid even if a crash wrote a line twice)."""
    rows: dict[str, Row] = {}
    for row in read_jsonl_tolerant(stage_dir / KEPT_FILE):
        rows.setdefault(row["uid"], row)
    return list(rows.values())


def dropped_rows(stage_dir: Path) -> list[Row]:
    rows: dict[str, Row] = {}
    for row in read_jsonl_tolerant(stage_dir / DROPPED_FILE):
        rows.setdefault(row["uid"], row)
    return list(rows.values())


def annotations(kept: list[Row], dropped: list[Row], section: str) -> list[dict[str, Any]]:
    """The `section` a stage added to each row it judged: `kept` rows and `dropped` entries."""
    rows = [*kept, *(entry["row"] for entry in dropped)]
    return [row[section] for row in rows if isinstance(row.get(section), dict)]


def _prepare(stage_dir: Path, fingerprint: str) -> None:
    """Keep partial files only when they belong to this exact fingerprint; otherwise start clean."""
    marker = stage_dir / FINGERPRINT_FILE
    if stage_dir.exists() and (not marker.exists() or marker.read_text().strip() != fingerprint):
        shutil.rmtree(stage_dir)
    if not marker.exists():
        stage_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, fingerprint + "\n")


def _record(stage_dir: Path, rows: Sequence[Row], outcomes: Sequence[Outcome], stage: Stage) -> None:
    if len(outcomes) != len(rows):
        raise RuntimeError(f"stage {stage.name} returned {len(outcomes)} outcomes for {len(rows)} rows")
    kept, dropped = [], []
    for row, outcome in zip(rows, outcomes):
        if isinstance(outcome, Drop):
            dropped.append({"uid": row["uid"], "reason": outcome.reason, "detail": outcome.detail,
                            "row": row if outcome.row is None else outcome.row})
        elif isinstance(outcome, dict) and outcome.get("uid") == row["uid"]:
            kept.append(outcome)
        else:
            raise RuntimeError(f"stage {stage.name} must return the row (same uid) or a Drop for {row['uid']}")
    # Dropped first: a row is "finished" once it appears in either file, and kept rows are what
    # the next stage trusts, so a crash between the two appends must not lose a kept row silently.
    append_jsonl(stage_dir / DROPPED_FILE, dropped)
    append_jsonl(stage_dir / KEPT_FILE, kept)


def _finished_uids(stage_dir: Path) -> set[str]:
    return {row["uid"] for name in (KEPT_FILE, DROPPED_FILE) for row in read_jsonl_tolerant(stage_dir / name)}


def run_stage(
    stage: Stage,
    rows: list[Row],
    stage_dir: Path,
    *,
    upstream: str,
    progress: Any = None,
) -> dict[str, Any]:
    """Run (or resume, or skip) one stage over `rows`; returns its manifest.

    `progress` is an optional callable `progress(done, total)` for a progress bar.
    """
    uids = [row.get("uid") for row in rows]
    missing = next((i for i, uid in enumerate(uids) if not uid), None)
    if missing is not None:
        raise DataError.at(stage_dir, missing + 1, "uid", f"row reaching stage {stage.name} has no uid",
                           "every stage must keep the row's uid")
    if len(set(uids)) != len(uids):
        duplicate = next(uid for uid, n in Counter(uids).items() if n > 1)
        raise DataError.at(stage_dir, uids.index(duplicate) + 1, "uid",
                           f"uid {duplicate} reaches stage {stage.name} twice", "uids must be unique")

    fingerprint = stage.fingerprint(upstream)
    manifest = read_manifest(stage_dir)
    if manifest and manifest.get("fingerprint") == fingerprint and manifest.get("finished"):
        return manifest
    _prepare(stage_dir, fingerprint)
    started = time.monotonic()

    if isinstance(stage, SetStage):
        # Whole-set stages write nothing until complete: a partial result would be wrong, not short.
        for name in (KEPT_FILE, DROPPED_FILE):
            (stage_dir / name).unlink(missing_ok=True)
        _record(stage_dir, rows, stage.process_all(rows), stage)
        if progress:
            progress(len(rows), len(rows))
    elif isinstance(stage, RowStage):
        finished = _finished_uids(stage_dir)
        todo = [row for row in rows if row["uid"] not in finished]
        done = len(rows) - len(todo)
        if progress:
            progress(done, len(rows))
        for start in range(0, len(todo), max(1, stage.batch_size)):
            batch = todo[start:start + stage.batch_size]
            _record(stage_dir, batch, stage.process_batch(batch), stage)
            done += len(batch)
            if progress:
                progress(done, len(rows))
    else:
        raise TypeError(f"{type(stage).__name__} is neither a RowStage nor a SetStage")

    kept = kept_rows(stage_dir)
    dropped = dropped_rows(stage_dir)
    manifest = {
        "stage": stage.name,
        "version": stage.version,
        "params": stage.params(),
        "fingerprint": fingerprint,
        "upstream": upstream,
        "rows_in": len(rows),
        "rows_out": len(kept),
        "dropped": dict(Counter(row["reason"] for row in dropped).most_common()),
        "seconds": round(time.monotonic() - started + (manifest or {}).get("seconds", 0.0), 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "extra": stage.report(kept, dropped),
    }
    if len(kept) + len(dropped) != len(rows):
        raise RuntimeError(f"stage {stage.name}: {len(rows)} rows in but {len(kept)} kept + {len(dropped)} dropped")
    atomic_write_json(stage_dir / MANIFEST_FILE, manifest)
    return manifest


def progress_bar(console: Console | None) -> Progress:
    """The bar a command shows stages on: one task per stage, advanced by `run_stage(progress=...)`."""
    return Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)


def summarize(stage_name: str, stage_dir: Path, rows_in: int | None = None) -> StageSummary:
    """The state of a stage directory, finished or not, for `m1 curate status`."""
    manifest = read_manifest(stage_dir)
    if manifest:
        return StageSummary(stage_name, "done", manifest["rows_in"], manifest["rows_out"], manifest["dropped"],
                            manifest.get("seconds"), manifest.get("fingerprint"), manifest.get("extra"))
    if not stage_dir.exists():
        return StageSummary(stage_name, "pending", rows_in, 0, {})
    dropped = dropped_rows(stage_dir)
    return StageSummary(stage_name, "partial", rows_in, len(kept_rows(stage_dir)),
                        dict(Counter(row["reason"] for row in dropped).most_common()))

