"""How far the answer's probability (read at the forced answer) can be trusted, for one grid point
in one grading mode: expected calibration error, the reliability diagram's bins, and selective
accuracy against coverage (answer only when the probability reaches a threshold) with the lowest
threshold that reaches an accuracy target.

    result = calibration([Judged(uid, row["confidence_strict"], row["strict_correct"]) for row in rows], target=0.9)
    result.to_dict()   # {"n", "with_probability", "missing", "ece", "bins", "selective", "target"}

Definitions. Items without a probability are counted and named (`missing`) and take no further
part: bins, ECE and coverage are over the `with_probability` items. Bins: 10 of equal width on
[0, 1], each [low, high) but the last, which includes 1. ECE = sum over bins of
count / with_probability * |accuracy - mean confidence|. Selective: for every distinct confidence t,
highest first, the items with confidence >= t are answered (coverage = their share, accuracy =
right among them); the list opens with coverage 0 (threshold and accuracy null: nothing answered).
The target's threshold is the smallest t whose selective accuracy reaches the target, which gives
the most coverage at that accuracy; null (and coverage null) when no threshold reaches it.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

BINS = 10
TARGET = 0.9
_TOLERANCE = 1e-12  # an accuracy equal to the target reaches it, whatever the rounding


@dataclass(frozen=True)
class Judged:
    """One item: its answer's probability (None: not read) and whether the answer is right."""

    uid: str
    confidence: float | None
    correct: bool


@dataclass(frozen=True)
class Bin:
    low: float
    high: float
    count: int
    confidence: float | None  # mean confidence of the bin's items; None when empty
    accuracy: float | None


@dataclass(frozen=True)
class Selective:
    threshold: float | None
    coverage: float
    accuracy: float | None


@dataclass(frozen=True)
class Target:
    accuracy: float  # the target asked for
    threshold: float | None
    coverage: float | None


@dataclass(frozen=True)
class Calibration:
    n: int
    with_probability: int
    missing: tuple[str, ...]
    ece: float | None
    bins: tuple[Bin, ...]
    selective: tuple[Selective, ...]
    target: Target

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"missing": list(self.missing), "bins": [asdict(b) for b in self.bins],
                               "selective": [asdict(s) for s in self.selective]}


def checked_target(target: float) -> float:
    """`target` if it is a share above 0 and at most 1; otherwise a ValueError that says so
    (`m1 report --target-accuracy` shows it as the option's error)."""
    if not 0.0 < target <= 1.0:  # also refuses nan
        raise ValueError(f"the target accuracy is a share above 0 and at most 1 (0.9 for 90 %), got {target}")
    return target


def calibration(items: Sequence[Judged], *, target: float = TARGET, bins: int = BINS) -> Calibration:
    checked_target(target)
    if bins < 1:
        raise ValueError(f"calibration needs 1 bin or more, got {bins}")
    for item in items:
        if item.confidence is not None and not 0.0 <= item.confidence <= 1.0:
            raise ValueError(f"item {item.uid}: confidence {item.confidence} is not a probability (0 to 1)")
    read = [item for item in items if item.confidence is not None]
    table = reliability_bins(read, bins)
    ece = sum(b.count / len(read) * abs(b.accuracy - b.confidence) for b in table if b.count) if read else None
    curve = selective_curve(read)
    lowest = lowest_reaching(curve, target)
    goal = Target(target, None, None) if lowest is None else Target(target, lowest.threshold, lowest.coverage)
    return Calibration(len(items), len(read), tuple(item.uid for item in items if item.confidence is None), ece,
                       table, curve, goal)


def lowest_reaching(curve: Sequence[Any], target: float) -> Any | None:
    """The point of a selective curve (anything with `threshold` and `accuracy`) with the lowest
    threshold whose accuracy reaches `target`: the most coverage at that accuracy; None when none does."""
    reached = [p for p in curve if p.threshold is not None and p.accuracy is not None
               and p.accuracy >= target - _TOLERANCE]
    return min(reached, key=lambda p: p.threshold, default=None)


def reliability_bins(read: Sequence[Judged], bins: int = BINS) -> tuple[Bin, ...]:
    inner_edges = [i / bins for i in range(1, bins)]
    members: list[list[Judged]] = [[] for _ in range(bins)]
    for item in read:
        members[bisect.bisect_right(inner_edges, item.confidence)].append(item)
    return tuple(Bin(i / bins, (i + 1) / bins, len(these),
                     statistics.fmean(m.confidence for m in these) if these else None,
                     statistics.fmean(m.correct for m in these) if these else None)
                 for i, these in enumerate(members))


def selective_curve(read: Sequence[Judged]) -> tuple[Selective, ...]:
    """Coverage and accuracy at every distinct confidence as the threshold, highest first."""
    ranked = sorted(read, key=lambda item: item.confidence, reverse=True)
    curve, right = [Selective(None, 0.0, None)], 0
    for index, item in enumerate(ranked):
        right += item.correct
        # An item ties with the next one: the threshold at their confidence answers both.
        if index + 1 == len(ranked) or ranked[index + 1].confidence != item.confidence:
            curve.append(Selective(item.confidence, (index + 1) / len(ranked), right / (index + 1)))
    return tuple(curve)
