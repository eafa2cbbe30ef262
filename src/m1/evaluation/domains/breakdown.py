"""Accuracy and tokens per domain at every grid point, and each domain's cheapest point: pure, no I/O.

    results = {"B512_K0": {uid: ItemResult(strict=True, reference=True, tokens=530), ...}, ...}
    breakdown = domain_breakdown(labels.names, results)
    breakdown.to_dict()["points"]["B512_K0"]["Drug Therapy"]  # {"n", "strict", "reference", "tokens_mean"}
    breakdown.to_dict()["cheapest"]["Drug Therapy"]           # {"strict": "B256_K0", "reference": "B512_K0"}

`groups` maps a uid to its group's name (a MeSH domain from a labels file; a source works the
same); items it does not name are left out, and a group counts at a point only the items that
point has. An item's result is decided by the caller (for a point with several samples, the
majority vote; tokens: all its samples).

The cheapest point of a group, per mode, is the one with the fewest mean tokens among the points
within 1 point of the group's best accuracy (accuracy >= best - 0.01), ties by point key: the
same rule as the frontier's "cheapest within 1 point of the best" for sources
(`cheapest_within`), so the two can share one home.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from m1.scoring import MODES

# Accuracies are ratios k/n; a candidate exactly one point below the best must not be lost to
# float rounding (0.03 - 0.01 < 0.02 in binary).
_ROUNDING = 1e-9


@dataclass(frozen=True)
class ItemResult:
    """One item at one grid point: right or wrong in each scoring mode, and the tokens it cost."""

    strict: bool
    reference: bool
    tokens: float


@dataclass(frozen=True)
class GroupCell:
    """One group at one grid point."""

    n: int
    strict: float
    reference: float
    tokens_mean: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "strict": self.strict, "reference": self.reference, "tokens_mean": self.tokens_mean}


@dataclass(frozen=True)
class DomainBreakdown:
    """`points`: point key -> group -> cell (points in the order given, groups by name);
    `cheapest`: group -> mode -> point key."""

    points: dict[str, dict[str, GroupCell]]
    cheapest: dict[str, dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {"points": {key: {group: cell.to_dict() for group, cell in cells.items()}
                           for key, cells in self.points.items()},
                "cheapest": {group: dict(modes) for group, modes in self.cheapest.items()}}


def cheapest_within(candidates: Mapping[str, tuple[float, float]], margin: float = 0.01) -> str:
    """The name whose (accuracy, tokens) has accuracy >= best - margin and the fewest tokens; ties by name."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    best = max(accuracy for accuracy, _tokens in candidates.values())
    near = [(tokens, name) for name, (accuracy, tokens) in candidates.items() if accuracy >= best - margin - _ROUNDING]
    return min(near)[1]


def domain_breakdown(groups: Mapping[str, str], points: Mapping[str, Mapping[str, ItemResult]]) -> DomainBreakdown:
    """Per point and group: n, accuracy in both modes, mean tokens; per group and mode: the cheapest point."""
    cells: dict[str, dict[str, GroupCell]] = {}
    for key, results in points.items():
        members: dict[str, list[ItemResult]] = defaultdict(list)
        for uid, result in results.items():
            if uid in groups:
                members[groups[uid]].append(result)
        cells[key] = {group: _cell(members[group]) for group in sorted(members)}
    cheapest: dict[str, dict[str, str]] = {}
    for group in sorted({group for row in cells.values() for group in row}):
        present = {key: row[group] for key, row in cells.items() if group in row}
        cheapest[group] = {mode: cheapest_within({key: (getattr(cell, mode), cell.tokens_mean)
                                                  for key, cell in present.items()})
                           for mode in MODES}
    return DomainBreakdown(cells, cheapest)


def _cell(results: list[ItemResult]) -> GroupCell:
    n = len(results)
    return GroupCell(n=n, strict=sum(r.strict for r in results) / n, reference=sum(r.reference for r in results) / n,
                     tokens_mean=statistics.fmean(r.tokens for r in results))
