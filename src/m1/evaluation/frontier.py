"""Accuracy against compute for every way a run answered (a policy: a grid point, or one aggregation
of a point's samples): accuracy with its 95 % Wilson interval, cost per correct answer, the Pareto
frontier, and per group (source, domain) the cheapest policy within 1 point of the best.

    policy = Policy("B512_K0_N4:majority", correct={uid: 1.0, ...}, tokens={uid: 2051, ...}, wall_seconds_per_item=3.1)
    accuracy(policy).to_dict()       # {"correct", "n", "accuracy", "ci_low", "ci_high", "cost_per_correct", "tokens_mean"}
    breakdown(policy, {"sources": source_of, "domains": domain_of}).to_dict()   # {"overall", "sources", "domains"}
    pareto_frontier(policies)        # names of the policies nothing beats on both accuracy and tokens, cheapest first
    cheapest_by_group(policies, source_of, margin=0.01)   # {source: name}

A policy's per-item `correct` is 1.0 or 0.0, or for the "sample" aggregation (m1.evaluation.votes)
the share of right samples; its accuracy is their mean and `correct` their sum. The interval is the
Wilson score interval on n items (`m1.scoring.wilson_interval`, the same formula as
`scipy.stats.binomtest(k, n).proportion_ci(0.95, "wilson")`, which also takes the real-valued count
of the "sample" aggregation where scipy needs an integer). A group map (uid -> group name) may
cover only some items (unlabelled items are left out of that breakdown) or more (ignored).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from m1.scoring import wilson_interval

MARGIN = 0.01  # "within 1 point of the best"
_TOLERANCE = 1e-9  # an accuracy exactly 1 point below the best counts as within it, whatever the rounding


@dataclass(frozen=True)
class Policy:
    """One way of answering the run's items: per-item correctness and tokens spent, keyed by uid."""

    name: str
    correct: Mapping[str, float]
    tokens: Mapping[str, float]
    wall_seconds_per_item: float | None = None

    def __post_init__(self) -> None:
        if set(self.correct) != set(self.tokens):
            raise ValueError(f"policy {self.name}: per-item correct and tokens name different items")
        if any(not 0.0 <= value <= 1.0 for value in self.correct.values()):
            raise ValueError(f"policy {self.name}: per-item correct is a share between 0 and 1")

    @property
    def tokens_mean(self) -> float:
        return self.tokens_mean_over(self.correct)

    def tokens_mean_over(self, uids: Collection[str]) -> float:
        return sum(self.tokens[uid] for uid in uids) / len(uids)

    def accuracy_over(self, uids: Collection[str]) -> float:
        return sum(self.correct[uid] for uid in uids) / len(uids)


@dataclass(frozen=True)
class Accuracy:
    """A policy's accuracy over n items, with its 95 % interval, tokens per correct answer (None
    when nothing was right) and tokens per item."""

    correct: float
    n: int
    accuracy: float
    ci_low: float
    ci_high: float
    cost_per_correct: float | None
    tokens_mean: float

    def to_dict(self) -> dict[str, Any]:
        correct = int(self.correct) if float(self.correct).is_integer() else self.correct
        return {"correct": correct, "n": self.n, "accuracy": self.accuracy, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "cost_per_correct": self.cost_per_correct,
                "tokens_mean": self.tokens_mean}


def accuracy(policy: Policy, uids: Collection[str] | None = None) -> Accuracy:
    """Over `uids` (default: all the policy's items)."""
    uids = list(policy.correct) if uids is None else list(uids)
    if not uids:
        raise ValueError(f"policy {policy.name}: accuracy over no items")
    correct = sum(policy.correct[uid] for uid in uids)
    low, high = wilson_interval(correct, len(uids))
    tokens = sum(policy.tokens[uid] for uid in uids)
    return Accuracy(correct, len(uids), correct / len(uids), low, high, tokens / correct if correct else None,
                    tokens / len(uids))


@dataclass(frozen=True)
class Breakdown:
    """Accuracy over all items and per group of each grouping (e.g. "sources", "domains")."""

    overall: Accuracy
    groups: Mapping[str, Mapping[str, Accuracy]]

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.to_dict(),
                **{kind: {name: found.to_dict() for name, found in by_name.items()}
                   for kind, by_name in self.groups.items()}}


def group_items(uids: Collection[str], group_of: Mapping[str, str]) -> dict[str, list[str]]:
    """The items of each group, in the items' order; items without a group are left out."""
    groups: dict[str, list[str]] = {}
    for uid in uids:
        if uid in group_of:
            groups.setdefault(group_of[uid], []).append(uid)
    return groups


def breakdown(policy: Policy, groupings: Mapping[str, Mapping[str, str]]) -> Breakdown:
    return Breakdown(accuracy(policy), {
        kind: {name: accuracy(policy, uids) for name, uids in group_items(policy.correct, group_of).items()}
        for kind, group_of in groupings.items()})


def _common_items(policies: Sequence[Policy], uids: Collection[str] | None) -> list[str]:
    if not policies:
        raise ValueError("no policies to compare")
    uids = list(policies[0].correct) if uids is None else list(uids)
    for policy in policies:
        if missing := [uid for uid in uids if uid not in policy.correct]:
            raise ValueError(f"policy {policy.name} lacks {len(missing)} of the items compared, e.g. {missing[0]}: "
                             "policies are compared on the same items")
    if not uids:
        raise ValueError("no items to compare the policies on")
    return uids


@dataclass(frozen=True)
class Option:
    """A policy as compared: its name (unique among those compared), accuracy and mean tokens per item."""

    name: str
    accuracy: float
    tokens: float


def pareto(options: Sequence[Option]) -> list[str]:
    """The names of the options no other dominates, cheapest first. One dominates another with
    accuracy >= and tokens <=, one of them strictly; equals both stay."""
    ranked = sorted(options, key=lambda o: (o.tokens, -o.accuracy, o.name))
    frontier, best = [], float("-inf")
    # Cheapest first: an option is dominated exactly when a strictly cheaper one is at least as
    # accurate (the running best) or an equally cheap one is more accurate (first in its group).
    for _, same_cost in itertools.groupby(ranked, key=lambda o: o.tokens):
        same_cost = list(same_cost)
        top = same_cost[0].accuracy
        if top > best:
            frontier += [o.name for o in same_cost if o.accuracy == top]
            best = top
    return frontier


def cheapest(options: Sequence[Option], margin: float = MARGIN) -> Option:
    """The option with the fewest tokens among those within `margin` of the best accuracy; ties by name."""
    if not options:
        raise ValueError("no policies to compare")
    best = max(o.accuracy for o in options)
    return min((o for o in options if o.accuracy >= best - margin - _TOLERANCE), key=lambda o: (o.tokens, o.name))


def _options(policies: Sequence[Policy], uids: Collection[str] | None) -> list[Option]:
    uids = _common_items(policies, uids)
    return [Option(p.name, p.accuracy_over(uids), p.tokens_mean_over(uids)) for p in policies]


def pareto_frontier(policies: Sequence[Policy], uids: Collection[str] | None = None) -> list[str]:
    """`pareto` over `uids` (default: the first policy's items)."""
    return pareto(_options(policies, uids))


def cheapest_within(policies: Sequence[Policy], uids: Collection[str] | None = None,
                    margin: float = MARGIN) -> str:
    """`cheapest` over `uids` (default: the first policy's items): the policy's name."""
    return cheapest(_options(policies, uids), margin).name


def cheapest_by_group(policies: Sequence[Policy], group_of: Mapping[str, str],
                      margin: float = MARGIN) -> dict[str, str]:
    """`cheapest_within` for each group of the (first) policy's items."""
    groups = group_items(_common_items(policies, None), group_of)
    return {name: cheapest_within(policies, uids, margin) for name, uids in groups.items()}
