"""Answer flips between neighbouring grid points: does thinking longer (B -> the next larger B),
one more "Wait" (K -> the next K) or stopping early (the fixed budget -> early exit) turn right
answers wrong, or wrong ones right? Per pair and grading mode: the four counts with the exact
McNemar p-value, overall and per group (source, domain), and the items that flipped.

    pairs = neighbour_pairs(config.grid_points())        # Pair("B512_K0", "B1024_K0", "budget"), ...
    answers = {key: {mode: votes[key].results[mode]["majority"] for mode in MODES} for key in keys}
    pair_flips(pair, answers, {"sources": source_of, "domains": domain_of}).to_dict()
    # {"from", "to", "kind", "strict": {"overall", "sources", "domains", "flipped"}, "reference": {...}}

A point's per-item answer is its "majority" aggregation (m1.evaluation.votes): the one answer of a
one-sample point, the majority vote of several. Neighbours share every other axis: the Wait count,
the early-exit setting, the prompt suffix and the number of samples. The p-value is
`m1.evaluation.paired.mcnemar_exact` on right->wrong against wrong->right; a flipped item's
"from"/"to" are its extracted letters (null: no answer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from m1.evaluation.config import GridPoint
from m1.evaluation.frontier import group_items
from m1.evaluation.paired import mcnemar_exact
from m1.evaluation.votes import ItemResult

Kind = Literal["budget", "wait", "early_exit"]


@dataclass(frozen=True)
class Pair:
    """Two neighbouring grid points, by key: `before` -> `after` along one axis."""

    before: str
    after: str
    kind: Kind

    def to_dict(self) -> dict[str, str]:
        return {"from": self.before, "to": self.after, "kind": self.kind}


def neighbour_pairs(points: Sequence[GridPoint]) -> list[Pair]:
    """Budget pairs, then Wait pairs, then fixed -> early exit pairs, each in the points' order."""
    thinking = [p for p in points if p.budget is not None]
    pairs = []
    for axis, kind, same in (("budget", "budget", ("extensions", "early_exit_index", "suffix_index")),
                             ("extensions", "wait", ("budget", "early_exit_index", "suffix_index"))):
        for point in thinking:
            if (after := _next_along(point, thinking, axis, same)) is not None:
                pairs.append(Pair(point.key, after.key, kind))
    keys = {p.key for p in points}
    pairs += [Pair(p.fixed.key, p.key, "early_exit") for p in points if p.early_exit is not None and p.fixed.key in keys]
    return pairs


def _next_along(point: GridPoint, points: Sequence[GridPoint], axis: str, same: tuple[str, ...]) -> GridPoint | None:
    """The point next larger on `axis` among those equal to `point` on the axes `same` and in samples."""
    def rest(p: GridPoint) -> tuple[Any, ...]:
        return (*(getattr(p, name) for name in same), p.samples)

    later = [p for p in points if rest(p) == rest(point) and getattr(p, axis) > getattr(point, axis)]
    return min(later, key=lambda p: getattr(p, axis), default=None)


@dataclass(frozen=True)
class FlipCounts:
    n: int
    right_to_wrong: int
    wrong_to_right: int
    both_right: int
    both_wrong: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flip_counts(outcomes: Sequence[tuple[bool, bool]]) -> FlipCounts:
    """Counts of (right before, right after) pairs, with the exact McNemar p-value."""
    right_to_wrong = sum(1 for a, b in outcomes if a and not b)
    wrong_to_right = sum(1 for a, b in outcomes if b and not a)
    both_right = sum(1 for a, b in outcomes if a and b)
    return FlipCounts(len(outcomes), right_to_wrong, wrong_to_right, both_right,
                      len(outcomes) - right_to_wrong - wrong_to_right - both_right,
                      mcnemar_exact(right_to_wrong, wrong_to_right))


@dataclass(frozen=True)
class Flip:
    uid: str
    source: str
    gold: str
    before: str | None
    after: str | None
    direction: Literal["right_to_wrong", "wrong_to_right"]

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "source": self.source, "gold": self.gold, "from": self.before,
                "to": self.after, "direction": self.direction}


@dataclass(frozen=True)
class Flips:
    """One pair in one mode: counts overall and per group of each grouping, and the flipped items."""

    overall: FlipCounts
    groups: Mapping[str, Mapping[str, FlipCounts]]
    flipped: tuple[Flip, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.to_dict(),
                **{kind: {name: counts.to_dict() for name, counts in by_name.items()}
                   for kind, by_name in self.groups.items()},
                "flipped": [flip.to_dict() for flip in self.flipped]}


def _right(item: ItemResult) -> bool:
    if item.correct not in (0.0, 1.0):
        raise ValueError(f"item {item.uid}: flips compare answers (right or wrong), not a share of right samples")
    return item.correct == 1.0


def compare(before: Sequence[ItemResult], after: Sequence[ItemResult],
            groupings: Mapping[str, Mapping[str, str]]) -> Flips:
    """The same items answered at two points (in `before`'s order); groupings as in m1.evaluation.frontier."""
    after_by_uid = {item.uid: item for item in after}
    if set(after_by_uid) != {item.uid for item in before}:
        raise ValueError("flips compare two points on the same items; these answer different ones")
    outcomes = {item.uid: (_right(item), _right(after_by_uid[item.uid])) for item in before}
    flipped = tuple(Flip(item.uid, item.source, item.gold, item.letter, after_by_uid[item.uid].letter,
                         "right_to_wrong" if outcomes[item.uid][0] else "wrong_to_right")
                    for item in before if outcomes[item.uid][0] != outcomes[item.uid][1])
    groups = {kind: {name: flip_counts([outcomes[uid] for uid in uids])
                     for name, uids in group_items(outcomes, group_of).items()}
              for kind, group_of in groupings.items()}
    return Flips(flip_counts(list(outcomes.values())), groups, flipped)


@dataclass(frozen=True)
class PairFlips:
    pair: Pair
    modes: Mapping[str, Flips]

    def to_dict(self) -> dict[str, Any]:
        return self.pair.to_dict() | {mode: flips.to_dict() for mode, flips in self.modes.items()}


def pair_flips(pair: Pair, answers: Mapping[str, Mapping[str, Sequence[ItemResult]]],
               groupings: Mapping[str, Mapping[str, str]]) -> PairFlips:
    """`answers[key][mode]`: each point's per-item answers in each mode (see the module)."""
    before, after = answers[pair.before], answers[pair.after]
    return PairFlips(pair, {mode: compare(before[mode], after[mode], groupings) for mode in before})
