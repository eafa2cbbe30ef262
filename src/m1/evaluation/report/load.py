"""Reading finished runs for the report: each run's `metrics.json` as a `RunResult` whose grid
points carry the chosen extraction mode's metrics, in the order the figures and tables use.

    [run] = load_runs([Path("runs/m1-7B-23K-m1-3f2a9c0e1b")], mode="strict")
    run.points[0].score(MICRO), run.points[0].usage.thinking_tokens_mean, run.points[0].audit.verdict

A run scored before the budget audit has none in its metrics.json: its points are audited here,
from their predictions.jsonl, and a point whose predictions cannot be read has no audit ("—").
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m1.data.errors import DataError
from m1.data.suite import SUITE
from m1.evaluation.audit import audit_point
from m1.evaluation.report.choose import Option
from m1.evaluation.summary import (
    Audit,
    Calibration,
    Domains,
    Flips,
    GroupScore,
    ModeSummary,
    PointSummary,
    Policy,
    RunSummary,
    Usage,
)
from m1.evaluation.view_links import run_names
from m1.io import read_jsonl_tolerant
from m1.scoring import MODES

MICRO, MACRO = "micro", "macro"  # the two averages, drawn and tabled beside the sources
PANEL_TITLES = {MICRO: "micro average (all items)", MACRO: "macro average (mean of sources)"}
# A grid point's key (m1.evaluation.config.GridPoint.key): budget and Wait count, then the
# early-exit setting, the number of samples and the prompt suffix, each only when not the first.
KEY = re.compile(r"^(?:nothink|E[a-z]+|B\d+_K\d+(?:_E[a-z]+)?)(?:_EE(?P<ee>\d+))?(?:_N(?P<n>\d+))?(?:_S(?P<s>\d+))?$")
REWRITE_ITEMS = "delete it and run the same `m1 eval` command again: it writes the sampled items anew"


@dataclass(frozen=True)
class Score:
    """One accuracy with its 95 % interval; `n` is items (a source, micro) or sources (macro)."""

    accuracy: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class PointResult:
    """One grid point of a run, in the chosen extraction mode."""

    key: str
    budget: int | None
    extensions: int
    suffix_index: int
    metrics: ModeSummary  # the chosen mode's
    usage: Usage
    early_exit_index: int = 0  # the key's _EE number; 0 for a fixed budget
    early_exit: dict[str, Any] | None = None  # the point's early-exit settings
    settling: dict[str, Any] | None = None  # its answer-settling curves (m1.evaluation.early_exit)
    samples: int = 1
    calibration: Calibration | None = None  # the chosen mode's, where scoring looked for answer probabilities
    audit: Audit | None = None  # how its thinking budget was honoured; None: its predictions are unreadable

    @property
    def order(self) -> tuple[int, int, int, int, int, int]:
        return (self.budget is not None, self.budget or 0, self.extensions, self.early_exit_index, self.samples,
                self.suffix_index)

    @property
    def no_answer_rate(self) -> float:
        return self.metrics.no_answer_rate

    def score(self, panel: str) -> Score | None:
        """Micro, macro or one source's accuracy; None where there is nothing to measure."""
        if panel == MICRO:
            entry, n = self.metrics.micro, self.metrics.micro.items
        elif panel == MACRO:
            entry, n = self.metrics.macro, self.metrics.macro.sources
        else:
            entry = next((s for s in self.metrics.sources if s.source == panel), None)
            n = entry.items if entry else 0
        return Score(entry.accuracy, entry.ci_low, entry.ci_high, n) if n else None

    def source_no_answer(self, source: str) -> float | None:
        for entry in self.metrics.sources:
            if entry.source == source and entry.items:
                return entry.no_answer_rate
        return None


@dataclass(frozen=True)
class RunResult:
    """A finished run's summary: who produced it and every grid point's metrics."""

    path: Path
    label: str
    model: str
    backend: str
    preset: str
    items: int
    points: list[PointResult]
    early_exit: dict[str, Any] | None = None  # metrics.json's early-exit comparisons, when the grid had early exit
    policies: list[Policy] = field(default_factory=list)  # every way of answering, with its cost (issue 14)
    flips: list[Flips] = field(default_factory=list)
    domains: Domains | None = None
    uids: frozenset[str] | None = None  # the items it answered (items.jsonl); None: the run has no items.jsonl
    view_name: str = ""  # its name in `m1 view` over the report's runs (m1.evaluation.view_links)

    @property
    def thinking_points(self) -> list[PointResult]:
        return [p for p in self.points if p.budget is not None]


def item_sets(runs: Sequence[RunResult]) -> list[list[int]]:
    """The runs' indices grouped by the items they answered, groups in the order first seen: only
    runs on the same items rank on one frontier. A run without items.jsonl is a group of its own,
    since what it answered is unknown."""
    groups: dict[object, list[int]] = {}
    for index, run in enumerate(runs):
        groups.setdefault(run.uids if run.uids is not None else ("unknown", index), []).append(index)
    return list(groups.values())


def item_sets_note(runs: Sequence[RunResult], sets: Sequence[Sequence[int]]) -> str:
    """What the report says above a comparison of runs on different items ("" when they share them)."""
    if len(sets) < 2:
        return ""

    def described(number: int, members: Sequence[int]) -> str:
        uids = runs[members[0]].uids
        size = "no items.jsonl, so its items are unknown" if uids is None else f"{len(uids)} items"
        return f"item set {number}: {', '.join(runs[i].label for i in members)} ({size})"

    listed = "; ".join(described(number, members) for number, members in enumerate(sets, 1))
    return ("The runs did not all answer the same items (their items.jsonl), so policies are ranked only against "
            "those of runs on the same items: the frontier and the cheapest policy are per item set. "
            f"{listed[0].upper()}{listed[1:]}.")


@dataclass(frozen=True)
class Costed:
    """One policy of one run, as the compute tables and the frontier figure show it."""

    run_index: int
    run: RunResult
    policy: Policy

    @property
    def name(self) -> str:
        """Unique among every run's policies (the label tells runs apart)."""
        return f"{self.run.label}: {self.policy.policy}"

    def shown(self, several: bool) -> str:
        return self.name if several else self.policy.policy

    def score(self, mode: str, kind: str = "overall", group: str | None = None) -> GroupScore | None:
        scores = self.policy.mode(mode)
        return scores.overall if kind == "overall" else getattr(scores, kind).get(group)

    def tokens(self, mode: str, kind: str = "overall", group: str | None = None) -> float:
        """Mean tokens per item of the group; a group's own where the summary has it."""
        score = self.score(mode, kind, group)
        if score is not None and score.tokens_mean is not None:
            return score.tokens_mean
        return self.policy.mode(mode).tokens_mean or self.policy.tokens_mean

    def option(self, mode: str, kind: str = "overall", group: str | None = None) -> Option | None:
        score = self.score(mode, kind, group)
        return None if score is None else Option(self.name, score.accuracy, self.tokens(mode, kind, group))


def costed_policies(runs: Sequence[RunResult]) -> list[Costed]:
    return [Costed(index, run, policy) for index, run in enumerate(runs) for policy in run.policies]


def calibrated_points(runs: Sequence[RunResult]) -> list[tuple[RunResult, PointResult]]:
    """Every run's grid points that have a calibration entry, in the runs' order; at some, no
    probability may have been read (no thinking, or a server without logprobs)."""
    return [(run, point) for run in runs for point in run.points if point.calibration is not None]


def read_points(runs: Sequence[RunResult]) -> list[tuple[RunResult, PointResult]]:
    """The calibrated points at which some answer probability was read: those the figures draw."""
    return [(run, point) for run, point in calibrated_points(runs) if point.calibration.with_probability]


def point_result(point: PointSummary, mode: str, root: Path | None = None) -> PointResult:
    """The point in `mode`; without an audit in the summary, audited from its predictions under `root`."""
    parts = KEY.match(point.point)
    number = (lambda name: int(parts.group(name) or 0)) if parts else (lambda name: 0)
    calibration = (point.calibration or {}).get(mode)
    audit = point.audit if point.audit is not None or root is None else audited(root, point)
    return PointResult(point.point, point.budget, point.extensions, number("s"), point.mode(mode), point.usage,
                       number("ee"), point.early_exit, point.settling, point.samples, calibration, audit)


def audited(root: Path, point: PointSummary) -> Audit | None:
    """The audit of a point scored before m1 audited budgets, from its predictions.jsonl (a row
    written twice around a crash counts once); None where they are missing or cannot be read,
    since the report shows a dash for it rather than refusing the whole run."""
    path = root / "points" / point.point / "predictions.jsonl"
    try:
        rows: dict[tuple[Any, Any], dict[str, Any]] = {}
        for row in read_jsonl_tolerant(path):
            if isinstance(row, dict):
                rows.setdefault((row.get("uid"), row.get("sample", 0)), row)
        return Audit.model_validate(audit_point(list(rows.values()), point.budget)) if rows else None
    except (OSError, ValueError, TypeError):  # ValueError: bad JSON or UTF-8, or an audit that does not validate
        return None


def answered_uids(root: Path) -> frozenset[str] | None:
    """The uids in a run directory's items.jsonl (what `m1 eval` sampled); None without the file."""
    path = root / "items.jsonl"
    if not path.exists():
        return None
    found = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError.at(path, number, "", f"not valid JSON ({exc})", REWRITE_ITEMS) from None
        if not isinstance(row, dict) or not isinstance(row.get("uid"), str):
            raise DataError.at(path, number, "uid", "missing or not a string", REWRITE_ITEMS)
        found.add(row["uid"])
    return frozenset(found)


def load_run(path: str | Path, mode: str = "strict") -> RunResult:
    """Read a run directory (or its `metrics.json`) written by `m1 eval`."""
    if mode not in MODES:
        raise ValueError(f"unknown scoring mode {mode!r}; valid modes: {', '.join(MODES)}")
    path = Path(path)
    root = path.parent if path.is_file() else path
    summary_file = root / "metrics.json"
    if not summary_file.exists():
        what = "no such run directory" if not root.exists() else "no metrics.json: the run has not finished scoring"
        raise DataError.at(summary_file, "", "", what, "pass a run directory written by `m1 eval`, or run the "
                                                       "same `m1 eval` command again to finish it")
    summary = RunSummary.read(summary_file)
    points = sorted((point_result(point, mode, root) for point in summary.points), key=lambda p: p.order)
    return RunResult(root, summary.run or root.name, summary.model, summary.backend, summary.preset, summary.items,
                     points, summary.early_exit, summary.policies, summary.flips, summary.domains,
                     answered_uids(root))


def load_runs(paths: Iterable[str | Path], mode: str = "strict") -> list[RunResult]:
    """Several runs, each with a label no other run has (figures and tables tell them apart by it)."""
    runs = [load_run(path, mode) for path in paths]
    seen: dict[str, int] = {}
    unique = []
    for run in runs:
        label = run.label
        if any(other is not run and other.label == label for other in runs):
            label = f"{run.path.resolve().parent.name}/{label}"
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} ({seen[label]})"
        unique.append(dataclasses.replace(run, label=label))
    return [dataclasses.replace(run, view_name=name) for run, name in zip(unique, run_names([r.path for r in runs]))]


def ordered_sources(runs: Sequence[RunResult]) -> list[str]:
    """Every source in any run: the suite's order first, then others in the order first seen."""
    found: list[str] = []
    for run in runs:
        for point in run.points:
            for entry in point.metrics.sources:
                if entry.source not in found:
                    found.append(entry.source)
    suite_order = {source.name: index for index, source in enumerate(SUITE)}
    return sorted(found, key=lambda name: (suite_order.get(name, len(suite_order)), found.index(name)))
