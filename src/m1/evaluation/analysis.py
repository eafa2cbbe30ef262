"""The compute-optimal sections of a run's summary, from its scored grid points: every policy's
accuracy against its cost, the answer flips between neighbouring points, and calibration.

    sections = analyse(points, scored, wall_seconds, {"sources": source_of, "domains": domain_of})
    summary |= sections.to_dict()       # "policies", "frontier", "flips"; sections.calibration[key] per point

A policy is one way the run answered its items: a one-sample grid point as it is, and for a point
with N samples each aggregation of m1.evaluation.votes ("sample": one sample's accuracy,
"majority", "weighted", "esc2"). Each is costed the same way: generated tokens per item over the
samples it used (thinking + answer + early-exit probes), plus wall time. The answer-letter read
behind the weighted vote's weights is counted in that vote's cost only; everywhere else it is
instrumentation. Wall time per item is the point's measured generation time per item, shared by
its aggregations in proportion to the tokens each used (a one-sample aggregation uses 1/N of it).

Per mode, the run's Pareto frontier (the policies nothing beats on both accuracy and tokens) and
the cheapest policy within 1 point of the best, overall and per group (source, MeSH domain).

Calibration is of single answers: every generated sample is one prediction, with the probability
the read gave the letter that mode extracted (`confidence_<mode>` in scored.jsonl).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from m1.evaluation.calibration import TARGET, Judged, calibration
from m1.evaluation.config import GridPoint
from m1.evaluation.flips import neighbour_pairs, pair_flips
from m1.evaluation.frontier import Policy, breakdown, cheapest_by_group, cheapest_within, pareto_frontier
from m1.evaluation.votes import PointVotes, aggregate_point, aggregation_names
from m1.scoring import MODES

Rows = Sequence[Mapping[str, Any]]

ESC_WINDOWS = (2,)
# The selective curve kept in metrics.json: at most this many thresholds, evenly spread over
# coverage (a full suite has a distinct confidence per item: ~10k points per grid point and mode).
SELECTIVE_POINTS = 201


@dataclass
class Sections:
    policies: list[dict[str, Any]] = field(default_factory=list)
    frontier: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> {"pareto", "cheapest"}
    flips: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)  # every point: key -> mode -> calibration
    target: float = TARGET  # the accuracy the calibration's selective threshold aims at

    def to_dict(self) -> dict[str, Any]:
        return {"policies": self.policies, "frontier": self.frontier, "flips": self.flips}


def point_votes(point: GridPoint, rows: Rows) -> PointVotes:
    """Every aggregation of one point's scored rows (m1.evaluation.votes)."""
    return aggregate_point(rows, windows=ESC_WINDOWS, where=f"points/{point.key}/scored.jsonl")


def analyse(points: Sequence[GridPoint], scored: Mapping[str, Rows], wall_seconds: Mapping[str, float],
            groupings: Mapping[str, Mapping[str, str]], *, target: float = TARGET,
            votes: Mapping[str, PointVotes] | None = None) -> Sections:
    """`wall_seconds`: each timed point's generation time; `votes`: `point_votes` already computed."""
    sections = Sections(target=target)
    answers, costed = {}, {mode: [] for mode in MODES}
    for point in points:
        rows = scored[point.key]
        votes_here = votes[point.key] if votes is not None else point_votes(point, rows)
        answers[point.key] = {mode: votes_here.results[mode]["majority"] for mode in MODES}
        for entry, policies in _policies(point, votes_here, rows, wall_seconds.get(point.key), groupings):
            sections.policies.append(entry)
            for mode in MODES:
                costed[mode].append(policies[mode])
        judged = {mode: [Judged(_prediction_id(row, point), row[f"confidence_{mode}"], bool(row[f"{mode}_correct"]))
                         for row in rows] for mode in MODES}
        # Every point, with or without a probability read: points without one are counted and named.
        sections.calibration[point.key] = {mode: _thinned(calibration(judged[mode], target=target).to_dict())
                                           for mode in MODES}
    for mode, policies in costed.items():
        sections.frontier[mode] = {
            "pareto": pareto_frontier(policies),
            "cheapest": {"overall": cheapest_within(policies)} | {
                kind: cheapest_by_group(policies, group_of) for kind, group_of in groupings.items()}}
    sections.flips = [pair_flips(pair, answers, groupings).to_dict() for pair in neighbour_pairs(points)]
    return sections


def _prediction_id(row: Mapping[str, Any], point: GridPoint) -> str:
    return row["uid"] if point.samples == 1 else f"{row['uid']}#{row.get('sample', 0)}"


def _policies(point: GridPoint, votes: PointVotes, rows: Rows, wall: float | None,
              groupings: Mapping[str, Mapping[str, str]]) -> list[tuple[dict[str, Any], dict[str, Policy]]]:
    """Each policy of the point: its summary entry and, per mode, the Policy it was computed from."""
    names = ("majority",) if point.samples == 1 else aggregation_names(ESC_WINDOWS)
    read_tokens: dict[str, float] = {}
    for row in rows:
        read_tokens[row["uid"]] = read_tokens.get(row["uid"], 0.0) + row.get("read_tokens", 0)
    full_cost = votes.tokens("strict", "majority")  # every sample's tokens
    entries = []
    for name in names:
        costed = {}
        entry: dict[str, Any] = {
            "policy": point.key if point.samples == 1 else f"{point.key}:{name}", "point": point.key,
            "aggregation": "single" if point.samples == 1 else name, "samples": point.samples}
        for mode in MODES:
            tokens = votes.tokens(mode, name)
            if name == "weighted":
                tokens = {uid: value + read_tokens.get(uid, 0.0) for uid, value in tokens.items()}
            share = sum(tokens.values()) / max(sum(full_cost.values()), 1e-9)
            per_item = None if wall is None or not tokens else wall / len(tokens) * min(share, 1.0)
            policy = costed[mode] = Policy(entry["policy"], votes.correct(mode, name), tokens, per_item)
            entry[mode] = breakdown(policy, groupings).to_dict() | {
                "tokens_mean": policy.tokens_mean, "wall_seconds_per_item": per_item}
            if point.samples > 1 and name != "sample":
                entry[mode] |= {"pass_at_k": {str(k): p for k, p in votes.pass_at_k[mode].items()},
                                "vote_share_mean": votes.vote_share_mean[mode]}
        # The cost of the policy as one number (ESC's differs slightly between modes: each stops on its own letters).
        entry["tokens_mean"] = entry["strict"]["tokens_mean"]
        entry["wall_seconds_per_item"] = entry["strict"]["wall_seconds_per_item"]
        entries.append((entry, costed))
    return entries


def _thinned(found: dict[str, Any]) -> dict[str, Any]:
    """The calibration with its selective curve cut to SELECTIVE_POINTS thresholds (the first, the last,
    evenly spread ones between, and the target's); the target was found on the whole curve."""
    curve: list[dict[str, Any]] = found["selective"]
    if len(curve) > SELECTIVE_POINTS:
        step = (len(curve) - 1) / (SELECTIVE_POINTS - 1)
        kept = {round(i * step) for i in range(SELECTIVE_POINTS)}
        # The target's own threshold stays, so the curve shows the accuracy reached there.
        kept |= {i for i, point in enumerate(curve) if point["threshold"] is not None
                 and point["threshold"] == found["target"]["threshold"]}
        curve = [curve[i] for i in sorted(kept)]
    return found | {"selective": curve}

