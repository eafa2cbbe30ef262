"""The report's choices among what the run summaries give: which policies form the Pareto frontier
and which is the cheapest within 1 point of the best, across the runs shown that answered the same
items, and the confidence threshold that reaches an accuracy target at a grid point.

    on_frontier = pareto([Option("B512_K0", 0.61, 812.0), Option("B1024_K0", 0.60, 1490.0)])  # ["B512_K0"]
    cheapest_within(options)                       # the Option: fewest tokens within 1 point of the best
    frontier_names(costed_policies(runs), item_sets(runs), "strict")   # the same, per item set of runs
    target_threshold(point.calibration, 0.9)       # a Threshold: scoring's own when it aimed at 0.9

The rules are `m1.evaluation.frontier`'s and `m1.evaluation.calibration`'s, which scoring applies
to one run's per-item results; the report applies them to the summaries' accuracies and mean
tokens, so that several runs compare on one frontier. For one run they give what scoring found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from m1.evaluation.calibration import lowest_reaching
from m1.evaluation.frontier import Option, cheapest, pareto
from m1.evaluation.summary import Calibration

if TYPE_CHECKING:  # load imports this module (Option)
    from m1.evaluation.report.load import Costed

__all__ = ["Option", "Threshold", "best", "cheapest_within", "frontier_names", "pareto", "target_threshold"]

SAME_TARGET = 1e-12  # a target asked for that is scoring's, whatever the rounding of a float on the way


def cheapest_within(options: Sequence[Option]) -> Option | None:
    """The option with the fewest tokens among those within 1 point of the best; None without options."""
    return cheapest(options) if options else None


def frontier_names(policies: Sequence[Costed], sets: Sequence[Sequence[int]], mode: str) -> set[str]:
    """The policies on the Pareto frontier of their item set's runs (`load.item_sets`): runs that
    answered different items never rank against each other."""
    return {name for members in sets
            for name in pareto([p.option(mode) for p in policies if p.run_index in members])}


def best(options: Sequence[Option]) -> Option | None:
    """The most accurate option (the cheaper of equals, then by name)."""
    return min(options, key=lambda o: (-o.accuracy, o.tokens, o.name), default=None)


@dataclass(frozen=True)
class Threshold:
    """The lowest confidence threshold whose answered items reach a target accuracy at one point."""

    threshold: float | None  # None: no threshold reaches the target
    coverage: float | None
    accuracy: float | None  # of the answered items; None where the stored curve lacks the threshold
    exact: bool  # scoring's, found on the whole curve; False: found on the thinned curve metrics.json keeps


def target_threshold(calibration: Calibration, target: float) -> Threshold:
    """Scoring's own threshold when it aimed at `target` (it searched every threshold); for another
    target, the lowest one that reaches it on the selective curve of the summary, which scoring
    thinned (m1.evaluation.analysis.SELECTIVE_POINTS): that can sit a step above the whole curve's."""
    stored = calibration.target
    if stored is not None and abs(stored.accuracy - target) <= SAME_TARGET:
        there = next((p.accuracy for p in calibration.selective
                      if stored.threshold is not None and p.threshold == stored.threshold), None)
        return Threshold(stored.threshold, stored.coverage, there, exact=True)
    reached = lowest_reaching(calibration.selective, target)
    if reached is None:
        return Threshold(None, None, None, exact=False)
    return Threshold(reached.threshold, reached.coverage, reached.accuracy, exact=False)
