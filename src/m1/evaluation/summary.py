"""A run's summary, `metrics.json`, as typed models: what `m1.evaluation.results.score_run` writes
and what `m1 report` and `m1 eval`'s table read.

    summary = RunSummary.read(Path("runs/m1-7B-23K-m1-3f2a9c0e1b/metrics.json"))
    summary.points[0].strict.micro.accuracy, summary.points[0].usage.thinking_tokens_mean
    RunSummary.model_validate(run_eval(config))      # the same summary, still in memory

Reading checks the shape once, so the report and the CLI read fields, not dictionary keys: a
summary that lacks a field or has one of the wrong type is a `DataError` naming the file, the
grid point and the field. The sections of issue 14 (`policies`, `flips`, per-point `calibration`,
`domains`, `usage.total_tokens_mean` and the wall time) and issue 17's per-point budget `audit`
are optional: a run scored before them reads as it always did, with those sections empty (the
report audits such a run from its predictions). Keys a model does not name are ignored, so a
summary written by a newer m1 still reads.

The early-exit comparisons and settling curves (`m1.evaluation.early_exit`) stay as the JSON
that module writes: the report tables them as they are and hands them back to `m1 report --json`
unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from m1.data.errors import DataError

RESCORE = "re-run `m1 eval` with this version of m1 to rescore the run"


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# ------------------------------------------------------------------ per point: accuracy and token use


class Counts(_Section):
    """Accuracy over some items with its 95 % Wilson interval (`m1.scoring.Accuracy.to_dict()`)."""

    items: int
    correct: int
    no_answer: int = 0
    accuracy: float
    ci_low: float
    ci_high: float
    no_answer_rate: float = 0.0


class SourceCounts(Counts):
    source: str
    rules: dict[str, int] = Field(default_factory=dict)


class Macro(_Section):
    """The mean of the sources' accuracies, with a normal interval; `sources` is how many."""

    accuracy: float
    ci_low: float
    ci_high: float
    sources: int


class ModeSummary(_Section):
    """One extraction mode's metrics at a grid point (`m1.scoring.ModeMetrics.to_dict()`)."""

    mode: str
    items: int
    no_answer_rate: float = 0.0
    micro: Counts
    macro: Macro
    sources: list[SourceCounts]
    rules: dict[str, int] = Field(default_factory=dict)


class Usage(_Section):
    """Tokens and time a grid point used (`m1.evaluation.results.token_usage` plus the wall time): the
    means are over its predictions (every sample), but total tokens and wall time are per item."""

    thinking_tokens_mean: float = 0.0
    thinking_tokens_median: float = 0.0
    thinking_tokens_max: int = 0
    answer_tokens_mean: float = 0.0
    inserted_tokens_mean: float = 0.0
    extensions_used_mean: float = 0.0
    budget_hit_rate: float = 0.0
    thinking_end: dict[str, int] = Field(default_factory=dict)
    errors: int = 0
    thinking_tokens: list[int] = Field(default_factory=list)  # every prediction's (all samples), in item order
    probes_mean: float | None = None  # the four probe fields: early-exit points only
    probe_tokens_mean: float | None = None
    probe_seconds_mean: float | None = None
    early_exit_rate: float | None = None
    total_tokens_mean: float | None = None  # thinking + answer + probes per item, all samples
    wall_seconds: float | None = None
    wall_seconds_per_item: float | None = None


# ------------------------------------------------------------------ per point: the budget audit


class AuditCost(_Section):
    """What the priced generations cost (the backend's `cost` per row)."""

    total: float
    per_item: float  # per item priced, all its samples
    rows: int  # generations with a cost


class AuditCounts(_Section):
    """How the thinking budget was honoured over some generations (`m1.evaluation.audit.audit_rows`):
    every sample is one generation; the token statistics are over the counted ones."""

    budget: int | None = None  # None: no numeric budget (no thinking, or an effort level only)
    effort: str | None = None
    generations: int
    counted: int
    uncounted: int = 0  # no thinking count known: not checked against the budget
    thinking_tokens_median: float | None = None
    thinking_tokens_p95: int | None = None
    thinking_tokens_max: int | None = None
    over_budget: int = 0
    over_budget_rate: float | None = None  # None without a budget or a counted generation
    overshoot_mean: float | None = None  # tokens over budget, among those over
    overshoot_max: int | None = None
    empty_answers: int = 0
    cut_by_length: int = 0
    never_closed: int = 0
    count_compared: int = 0  # generations with both a reported and a recounted thinking count
    count_disagreements: int = 0  # of those, the ones apart by more than audit.DISAGREEMENT_PERCENT
    count_disagreement_rate: float | None = None
    errors: int = 0
    cost: AuditCost | None = None
    verdict: str  # one of m1.evaluation.audit's verdicts


class Audit(AuditCounts):
    """A grid point's budget audit, overall and per source."""

    sources: dict[str, AuditCounts] = Field(default_factory=dict)


# ------------------------------------------------------------------ per point: calibration


class CalibrationBin(_Section):
    low: float
    high: float
    count: int
    confidence: float | None = None  # mean confidence of the bin's items; None in an empty bin
    accuracy: float | None = None


class SelectivePoint(_Section):
    """Answer only the items whose confidence is at least `threshold`."""

    threshold: float | None = None  # None at coverage 0, where the curve starts: nothing answered
    coverage: float
    accuracy: float | None = None


class CalibrationTarget(_Section):
    accuracy: float
    threshold: float | None = None  # None: no threshold reaches the target accuracy
    coverage: float | None = None


class Calibration(_Section):
    """How well the answer probability read at the forced answer predicts being right (one mode)."""

    n: int  # predictions (items times samples)
    with_probability: int
    # Predictions without a probability: their uids, or "uid#sample" at a point with several samples.
    missing: list[str] = Field(default_factory=list)
    ece: float | None = None
    bins: list[CalibrationBin] = Field(default_factory=list)
    # Highest threshold first, thinned by scoring to at most m1.evaluation.analysis.SELECTIVE_POINTS
    # thresholds; `target` was found on the whole curve, so it is exact where the thinned curve is not.
    selective: list[SelectivePoint] = Field(default_factory=list)
    target: CalibrationTarget | None = None


class PointSummary(_Section):
    """One grid point: both modes' metrics, token use, and what early exit and calibration add."""

    point: str
    budget: int | None = None
    extensions: int = 0
    suffix: str | None = None
    samples: int = 1
    strict: ModeSummary
    reference: ModeSummary
    disagreement: int = 0
    usage: Usage
    early_exit: dict[str, Any] | None = None  # the point's early-exit settings
    settling: dict[str, Any] | None = None  # its answer-settling curves (m1.evaluation.early_exit)
    calibration: dict[str, Calibration] | None = None  # mode -> calibration; None when nothing was read
    audit: Audit | None = None  # None in a run scored before the audit

    def mode(self, mode: str) -> ModeSummary:
        return self.strict if mode == "strict" else self.reference


# ------------------------------------------------------------------ run level: policies and flips


class GroupScore(_Section):
    """A policy's accuracy over a group of items (all, a source, a domain), with its cost
    (`m1.evaluation.frontier.Accuracy.to_dict()`)."""

    correct: float  # a count; the "sample" aggregation's is a sum of shares of right samples
    n: int
    accuracy: float
    ci_low: float
    ci_high: float
    cost_per_correct: float | None = None  # total tokens / correct; None with none correct
    tokens_mean: float | None = None  # per item of the group


class PolicyScores(_Section):
    """A policy in one mode: accuracy overall and per group, its cost, and what votes add."""

    overall: GroupScore
    sources: dict[str, GroupScore] = Field(default_factory=dict)
    domains: dict[str, GroupScore] = Field(default_factory=dict)
    tokens_mean: float | None = None
    wall_seconds_per_item: float | None = None
    pass_at_k: dict[str, float] | None = None  # votes over several samples only
    vote_share_mean: float | None = None


class Policy(_Section):
    """One way of answering at a grid point: the point itself, or an aggregation of its samples
    (`m1.evaluation.analysis`)."""

    policy: str  # "B512_K0", or "B512_K0_N4:majority" for an aggregation of samples
    point: str
    aggregation: str  # "single", "sample", "majority", "weighted", "esc<w>"
    samples: int = 1
    tokens_mean: float
    wall_seconds_per_item: float | None = None
    strict: PolicyScores
    reference: PolicyScores

    def mode(self, mode: str) -> PolicyScores:
        return self.strict if mode == "strict" else self.reference


class FlipCounts(_Section):
    n: int
    right_to_wrong: int
    wrong_to_right: int
    both_right: int
    both_wrong: int
    p_value: float  # exact McNemar


class FlippedItem(_Section):
    uid: str
    source: str
    gold: str
    from_: str | None = Field(None, alias="from")  # extracted letters; None: no answer
    to: str | None = None
    direction: str


class FlipsOfMode(_Section):
    overall: FlipCounts
    sources: dict[str, FlipCounts] = Field(default_factory=dict)
    domains: dict[str, FlipCounts] = Field(default_factory=dict)
    flipped: list[FlippedItem] = Field(default_factory=list)


class Flips(_Section):
    """Items that changed between two neighbouring grid points."""

    from_: str = Field(alias="from")
    to: str
    kind: Literal["budget", "wait", "early_exit"]
    strict: FlipsOfMode
    reference: FlipsOfMode

    def mode(self, mode: str) -> FlipsOfMode:
        return self.strict if mode == "strict" else self.reference


class Domains(_Section):
    """The MeSH domain labels the run was broken down by."""

    file: str
    sha256: str
    labelled: int
    unlabelled: list[str] = Field(default_factory=list)


class RunSummary(_Section):
    """A run's `metrics.json`."""

    run: str | None = None
    model: str = "?"
    backend: str = "?"
    preset: str = "?"
    items: int = 0
    points: list[PointSummary]
    early_exit: dict[str, Any] | None = None  # {"method", "comparisons"}; grids with early exit
    policies: list[Policy] = Field(default_factory=list)
    flips: list[Flips] = Field(default_factory=list)
    domains: Domains | None = None
    calibration_target: float | None = None

    @classmethod
    def read(cls, file: Path) -> RunSummary:
        """The summary in `file`, or a `DataError` naming the file, the point and the field."""
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError.at(file, "", "", f"not valid JSON ({exc})", "re-run `m1 eval` to rewrite it") from None
        return cls.of(data, file)

    @classmethod
    def of(cls, data: Any, where: str | Path = "run summary") -> RunSummary:
        """`data` (a parsed summary) checked as one; `where` names it in errors."""
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            raise DataError.at(where, "", "points", "missing: this is not a run summary",
                               "pass a run directory written by `m1 eval`")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            row, field = _row_and_field(first["loc"])
            problem = "missing" if first["type"] == "missing" else f"{first['msg']} (got {first.get('input')!r})"
            raise DataError.at(where, row, field, problem, RESCORE) from None


def _row_and_field(loc: tuple[Any, ...]) -> tuple[str, str]:
    """("points", 3, "strict", "micro") -> ("points[3]", "strict.micro"): the row is the list entry."""
    parts = [str(part) for part in loc]
    for index, part in enumerate(loc):
        if isinstance(part, int):
            return f"{'.'.join(parts[:index])}[{part}]", ".".join(parts[index + 1:])
    return "", ".".join(parts)
