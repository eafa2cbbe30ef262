"""The accuracy-vs-compute frontier (m1.evaluation.frontier): Wilson intervals against scipy's, cost
per correct, breakdowns by group, the Pareto frontier and "cheapest within 1 point" against brute
force on random policies with tied costs and accuracies."""

from __future__ import annotations

import json
import math
import random

import pytest
from scipy.stats import binomtest

from m1.evaluation.frontier import (
    Policy,
    accuracy,
    breakdown,
    cheapest_by_group,
    cheapest_within,
    pareto_frontier,
)

UIDS = [f"u{i:02d}" for i in range(20)]


def random_policy(rng: random.Random, name: str, uids: list[str] = UIDS, *, share: bool = False) -> Policy:
    """Few distinct accuracies and costs, so that ties are common."""
    p = rng.choice([0.3, 0.5, 0.7])
    correct = {uid: (rng.randint(0, 4) / 4 if share else float(rng.random() < p)) for uid in uids}
    cost = rng.choice([100, 200, 400])
    return Policy(name, correct, {uid: float(cost) for uid in uids}, wall_seconds_per_item=rng.random())


def test_accuracy_interval_is_scipys_wilson_interval() -> None:
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, 60)
        uids = [f"u{i}" for i in range(n)]
        policy = Policy("p", {u: float(rng.random() < 0.6) for u in uids}, {u: rng.randint(1, 99) for u in uids})
        found = accuracy(policy)
        k = round(found.correct)
        scipy_ci = binomtest(k, n).proportion_ci(0.95, "wilson")
        assert (found.n, found.accuracy) == (n, k / n)
        assert found.ci_low == pytest.approx(scipy_ci.low, abs=1e-12)
        assert found.ci_high == pytest.approx(scipy_ci.high, abs=1e-12)
        total = sum(policy.tokens.values())
        assert found.cost_per_correct == (total / k if k else None)


def test_a_share_of_right_samples_gets_an_interval_between_its_neighbours() -> None:
    rng = random.Random(2)
    for _ in range(100):
        policy = random_policy(rng, "p:sample", share=True)
        found = accuracy(policy)
        low_k, high_k = math.floor(found.correct), math.ceil(found.correct)
        low_ci = binomtest(low_k, len(UIDS)).proportion_ci(0.95, "wilson")
        high_ci = binomtest(high_k, len(UIDS)).proportion_ci(0.95, "wilson")
        assert low_ci.low - 1e-12 <= found.ci_low <= high_ci.low + 1e-12
        assert low_ci.high - 1e-12 <= found.ci_high <= high_ci.high + 1e-12
        assert found.ci_low <= found.accuracy <= found.ci_high
        expected_cost = sum(policy.tokens.values()) / found.correct if found.correct else None
        assert found.cost_per_correct == pytest.approx(expected_cost)


def test_breakdown_by_groups_with_unlabelled_items() -> None:
    rng = random.Random(3)
    policy = random_policy(rng, "B512_K0")
    source_of = {uid: f"src{i % 3}" for i, uid in enumerate(UIDS)}
    domain_of = {uid: rng.choice(["Cardiology", "Pharmacology"]) for uid in UIDS[:15]} | {"elsewhere": "Surgery"}
    found = breakdown(policy, {"sources": source_of, "domains": domain_of})
    as_dict = found.to_dict()
    assert set(as_dict) == {"overall", "sources", "domains"}
    assert set(as_dict["domains"]) <= {"Cardiology", "Pharmacology"}         # an item not in the run is ignored
    assert sum(g["n"] for g in as_dict["domains"].values()) == 15             # unlabelled items are left out
    for kind, group_of in (("sources", source_of), ("domains", domain_of)):
        for name, entry in as_dict[kind].items():
            members = [uid for uid in UIDS if group_of.get(uid) == name]
            assert entry == accuracy(policy, members).to_dict()
            assert set(entry) == {"correct", "n", "accuracy", "ci_low", "ci_high", "cost_per_correct", "tokens_mean"}
    assert as_dict["overall"]["correct"] == int(sum(policy.correct.values()))   # a count, not 7.0
    json.dumps(as_dict)


def dominated(a: Policy, b: Policy) -> bool:
    """b dominates a: at least as accurate and as cheap, one strictly."""
    acc_a, acc_b = sum(a.correct.values()), sum(b.correct.values())
    return acc_b >= acc_a and b.tokens_mean <= a.tokens_mean and (acc_b > acc_a or b.tokens_mean < a.tokens_mean)


def test_pareto_frontier_equals_brute_force() -> None:
    rng = random.Random(4)
    for _ in range(300):
        policies = [random_policy(rng, f"p{i}") for i in range(rng.randint(1, 9))]
        expected = {a.name for a in policies if not any(dominated(a, b) for b in policies if b is not a)}
        frontier = pareto_frontier(policies)
        assert set(frontier) == expected
        costs = [next(p.tokens_mean for p in policies if p.name == name) for name in frontier]
        assert costs == sorted(costs)                                            # cheapest first
        rng.shuffle(policies)
        assert set(pareto_frontier(policies)) == expected                       # the listing order does not matter


def test_cheapest_within_equals_brute_force_and_counts_exactly_one_point() -> None:
    rng = random.Random(5)
    for _ in range(300):
        policies = [random_policy(rng, f"p{i}") for i in range(rng.randint(1, 9))]
        margin = rng.choice([0.0, 0.05, 0.1])
        best = max(sum(p.correct.values()) for p in policies)
        near = [p for p in policies if sum(p.correct.values()) >= best - margin * len(UIDS) - 1e-9]
        assert cheapest_within(policies, margin=margin) == min(near, key=lambda p: (p.tokens_mean, p.name)).name
    hundred = [f"u{i}" for i in range(100)]
    best = Policy("best", {u: float(i < 53) for i, u in enumerate(hundred)}, dict.fromkeys(hundred, 900.0))
    one_below = Policy("one_below", {u: float(i < 52) for i, u in enumerate(hundred)}, dict.fromkeys(hundred, 300.0))
    two_below = Policy("two_below", {u: float(i < 51) for i, u in enumerate(hundred)}, dict.fromkeys(hundred, 100.0))
    assert cheapest_within([best, one_below, two_below]) == "one_below"   # 0.52 is within 0.01 of 0.53


def test_cheapest_by_group_is_cheapest_within_each_group() -> None:
    rng = random.Random(6)
    source_of = {uid: f"src{i % 4}" for i, uid in enumerate(UIDS)}
    for _ in range(50):
        policies = [random_policy(rng, f"p{i}") for i in range(5)]
        found = cheapest_by_group(policies, source_of)
        assert set(found) == set(source_of.values())
        for name, chosen in found.items():
            assert chosen == cheapest_within(policies, [u for u in UIDS if source_of[u] == name])


def test_policies_on_different_items_are_refused() -> None:
    rng = random.Random(7)
    with pytest.raises(ValueError, match="lacks 1 of the items"):
        pareto_frontier([random_policy(rng, "a"), random_policy(rng, "b", UIDS[:-1])])
    with pytest.raises(ValueError, match="different items"):
        Policy("a", {"u1": 1.0}, {"u2": 10.0})
    with pytest.raises(ValueError, match="between 0 and 1"):
        Policy("a", {"u1": 2.0}, {"u1": 10.0})
