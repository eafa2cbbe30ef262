"""The per-domain breakdown (`m1.evaluation.domains.breakdown`) on synthetic runs: every cell is the
mean over the domain's items at that point, and each domain's cheapest point is the cheapest of
the points within 1 point of its best accuracy, in each scoring mode."""

from __future__ import annotations

import random
import statistics

import pytest

from m1.evaluation.domains import ItemResult, cheapest_within, domain_breakdown

MODES = ("strict", "reference")


def synthetic_run(seed: int):
    """Random labels (some items unlabelled) and random results at a few points (some items missing)."""
    rng = random.Random(seed)
    uids = [f"item-{i}" for i in range(rng.randint(20, 80))]
    domains = [f"domain {chr(65 + d)}" for d in range(rng.randint(1, 6))]
    groups = {uid: rng.choice(domains) for uid in uids if rng.random() < 0.9}
    points = {}
    for key in rng.sample(["B128_K0", "B256_K0", "B512_K0", "B512_K1", "B1024_K0_EE1"], rng.randint(1, 5)):
        skill, length = rng.random(), rng.choice([100, 300, 900])
        points[key] = {uid: ItemResult(strict=rng.random() < skill, reference=rng.random() < skill + 0.1,
                                       tokens=rng.randint(length // 2, length * 2))
                       for uid in uids if rng.random() < 0.95}
    return groups, points


@pytest.mark.parametrize("seed", range(12))
def test_cells_are_means_over_the_domains_items_at_each_point(seed: int) -> None:
    groups, points = synthetic_run(seed)
    breakdown = domain_breakdown(groups, points).to_dict()
    assert list(breakdown["points"]) == list(points)
    for key, results in points.items():
        cells = breakdown["points"][key]
        assert list(cells) == sorted(cells)
        assert sum(cell["n"] for cell in cells.values()) == sum(uid in groups for uid in results)
        for domain, cell in cells.items():
            members = [result for uid, result in results.items() if groups.get(uid) == domain]
            assert cell["n"] == len(members) > 0
            for mode in MODES:
                assert cell[mode] == pytest.approx(statistics.fmean(getattr(r, mode) for r in members))
            assert cell["tokens_mean"] == pytest.approx(statistics.fmean(r.tokens for r in members))


@pytest.mark.parametrize("seed", range(12))
def test_the_cheapest_point_is_within_one_point_of_the_best_and_none_within_is_cheaper(seed: int) -> None:
    groups, points = synthetic_run(seed)
    breakdown = domain_breakdown(groups, points).to_dict()
    cells = breakdown["points"]
    assert set(breakdown["cheapest"]) == {domain for row in cells.values() for domain in row}
    for domain, chosen in breakdown["cheapest"].items():
        present = {key: row[domain] for key, row in cells.items() if domain in row}
        for mode in MODES:
            best = max(cell[mode] for cell in present.values())
            pick = present[chosen[mode]]
            assert pick[mode] >= best - 0.01 - 1e-9
            for key, cell in present.items():
                if cell[mode] >= best - 0.01 - 1e-9:
                    assert (pick["tokens_mean"], chosen[mode]) <= (cell["tokens_mean"], key)


def build(n: int, correct: dict[str, int], tokens: dict[str, float], domain: str = "Diagnosis"):
    """One domain of n items at points whose k correct items and mean tokens are given."""
    groups = {f"u{i}": domain for i in range(n)}
    points = {key: {f"u{i}": ItemResult(strict=i < k, reference=i < k, tokens=tokens[key]) for i in range(n)}
              for key, k in correct.items()}
    return groups, points


@pytest.mark.parametrize("n", [100, 200, 300, 700])
def test_a_point_exactly_one_point_below_the_best_still_counts(n: int) -> None:
    # k/n - 0.01 is not exactly (k - n/100)/n in binary for many k: the rule must not depend on it.
    for best in range(n // 100 + 1, n + 1, max(1, n // 37)):
        groups, points = build(n, {"B1024_K0": best, "B256_K0": best - n // 100, "B128_K0": best - n // 100 - 1},
                               {"B1024_K0": 900.0, "B256_K0": 250.0, "B128_K0": 120.0})
        cheapest = domain_breakdown(groups, points).cheapest["Diagnosis"]
        assert cheapest == {"strict": "B256_K0", "reference": "B256_K0"}, best


def test_equal_tokens_break_ties_by_key_and_modes_choose_apart() -> None:
    groups = {"a": "Surgery", "b": "Surgery"}
    points = {
        "B512_K0": {"a": ItemResult(True, False, 300), "b": ItemResult(True, False, 300)},
        "B256_K0": {"a": ItemResult(True, True, 300), "b": ItemResult(True, True, 300)},
        "B128_K0": {"a": ItemResult(False, True, 100), "b": ItemResult(False, True, 100)},
    }
    cheapest = domain_breakdown(groups, points).cheapest["Surgery"]
    assert cheapest == {"strict": "B256_K0", "reference": "B128_K0"}
    assert cheapest_within({"z": (0.5, 10.0), "a": (0.5, 10.0)}) == "a"
    with pytest.raises(ValueError):
        cheapest_within({})
