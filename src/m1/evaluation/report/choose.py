"""The report's choices among what the run summaries give: which policies form the Pareto frontier
and which is the cheapest within 1 point of the best, across every run shown, and the confidence
threshold that reaches an accuracy target on a point's selective curve.

    on_frontier = pareto([Option("B512_K0", 0.61, 812.0), Option("B1024_K0", 0.60, 1490.0)])  # ["B512_K0"]
    cheapest_within(options)                       # the Option: fewest tokens within 1 point of the best
    reaching(point.calibration.selective, 0.9)     # the SelectivePoint, or None

The rules are `m1.evaluation.frontier`'s and `m1.evaluation.calibration`'s, which scoring applies
to one run's per-item results; the report applies them to the summaries' accuracies and mean
tokens, so that several runs compare on one frontier. For one run they give what scoring found.
"""

from __future__ import annotations

from collections.abc import Sequence

from m1.evaluation.calibration import lowest_reaching
from m1.evaluation.frontier import Option, cheapest, pareto
from m1.evaluation.summary import SelectivePoint

__all__ = ["Option", "best", "cheapest_within", "pareto", "reaching"]


def cheapest_within(options: Sequence[Option]) -> Option | None:
    """The option with the fewest tokens among those within 1 point of the best; None without options."""
    return cheapest(options) if options else None


def best(options: Sequence[Option]) -> Option | None:
    """The most accurate option (the cheaper of equals, then by name)."""
    return min(options, key=lambda o: (-o.accuracy, o.tokens, o.name), default=None)


def reaching(curve: Sequence[SelectivePoint], target: float) -> SelectivePoint | None:
    """The point of the selective curve with the lowest threshold whose accuracy reaches `target`
    (the most coverage at that accuracy); None when none does."""
    return lowest_reaching(curve, target)
