"""The report's choices among what the run summaries give: which policies form the Pareto frontier
and which is the cheapest within 1 point of the best, across every run shown, and the confidence
threshold that reaches an accuracy target on a point's selective curve.

    on_frontier = pareto([Option("B512_K0", 0.61, 812.0), Option("B1024_K0", 0.60, 1490.0)])  # {"B512_K0"}
    cheapest_within(options)                       # the Option: fewest tokens within 1 point of the best
    reaching(point.calibration.selective, 0.9)     # the SelectivePoint, or None

The rules are those of `m1.evaluation.frontier` (which scoring applies to one run's per-item
results): a policy is on the frontier when no other has accuracy >= and tokens <=, one strictly;
"within 1 point" is accuracy >= best - 0.01, then the fewest tokens, ties by name. The report
applies them to the summaries' accuracies and mean tokens, so that several runs compare on one
frontier; for one run they give what scoring found.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from m1.evaluation.summary import SelectivePoint

MARGIN = 0.01  # "within 1 point of the best"
_TOLERANCE = 1e-9  # exactly 1 point below the best is within it, whatever the rounding


@dataclass(frozen=True)
class Option:
    """A policy as compared: its name (unique among those compared), accuracy and mean tokens per item."""

    name: str
    accuracy: float
    tokens: float


def pareto(options: Sequence[Option]) -> set[str]:
    """The names of the options no other dominates."""
    ranked = sorted(options, key=lambda o: (o.tokens, -o.accuracy, o.name))
    frontier: set[str] = set()
    best = float("-inf")
    # Cheapest first: dominated exactly when a cheaper option is at least as accurate (the running
    # best) or an equally cheap one is more accurate (the first of its group).
    for _, same_cost in itertools.groupby(ranked, key=lambda o: o.tokens):
        same_cost = list(same_cost)
        top = same_cost[0].accuracy
        if top > best:
            frontier |= {o.name for o in same_cost if o.accuracy == top}
            best = top
    return frontier


def cheapest_within(options: Sequence[Option], margin: float = MARGIN) -> Option | None:
    """The option with the fewest tokens among those within `margin` of the best; None without options."""
    if not options:
        return None
    best = max(o.accuracy for o in options)
    return min((o for o in options if o.accuracy >= best - margin - _TOLERANCE), key=lambda o: (o.tokens, o.name))


def best(options: Sequence[Option]) -> Option | None:
    """The most accurate option (the cheaper of equals, then by name)."""
    return min(options, key=lambda o: (-o.accuracy, o.tokens, o.name), default=None)


def reaching(curve: Sequence[SelectivePoint], target: float) -> SelectivePoint | None:
    """The point of the selective curve with the lowest threshold whose accuracy reaches `target`
    (the most coverage at that accuracy); None when none does."""
    reached = [p for p in curve if p.threshold is not None and p.accuracy is not None
               and p.accuracy >= target - 1e-12]
    return min(reached, key=lambda p: p.threshold, default=None)
