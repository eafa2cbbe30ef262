"""Paired accuracy statistics (m1.evaluation.paired): the exact McNemar p-value on counts worked out
by hand, the bootstrap interval against index resampling, its coverage and its width, ties and
empty groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from m1.evaluation.paired import bootstrap_interval, mcnemar_exact, paired_difference


@pytest.mark.parametrize(("a_only", "b_only", "expected"), [
    # two-sided: 2 · P(X ≤ min) for X ~ Binomial(a_only + b_only, 1/2), capped at 1
    (1, 9, 2 * (1 + 10) / 2 ** 10),                 # C(10,0) + C(10,1) = 11
    (0, 6, 2 * 1 / 2 ** 6),                         # only C(6,0)
    (3, 7, 2 * (1 + 10 + 45 + 120) / 2 ** 10),      # C(10,0..3) = 176 → 0.34375
    (2, 12, 2 * (1 + 14 + 91) / 2 ** 14),           # C(14,0..2) = 106
    (5, 5, 1.0),                                    # as balanced as it gets
    (0, 0, 1.0),                                    # no discordant pair: no evidence either way
])
def test_mcnemar_exact_p_values(a_only: int, b_only: int, expected: float) -> None:
    assert mcnemar_exact(a_only, b_only) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_exact(b_only, a_only) == pytest.approx(expected, rel=1e-12)  # the test is symmetric


def test_mcnemar_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        mcnemar_exact(-1, 3)


def outcomes(a_only: int, b_only: int, both: int, neither: int) -> tuple[list[bool], list[bool]]:
    """Paired outcomes with the given cell counts, in an interleaved (not sorted) order."""
    pairs = [(True, False)] * a_only + [(False, True)] * b_only + [(True, True)] * both + [(False, False)] * neither
    order = np.random.default_rng(7).permutation(len(pairs))
    return [pairs[i][0] for i in order], [pairs[i][1] for i in order]


def test_paired_difference_counts_and_accuracies() -> None:
    a, b = outcomes(a_only=6, b_only=2, both=10, neither=2)  # n = 20
    result = paired_difference(a, b, seed=1)
    assert (result.n, result.a_only, result.b_only) == (20, 6, 2)
    assert result.accuracy_a == pytest.approx(16 / 20) and result.accuracy_b == pytest.approx(12 / 20)
    assert result.difference == pytest.approx(4 / 20)
    assert result.p_value == pytest.approx(mcnemar_exact(6, 2))
    assert -1 <= result.ci_low <= result.difference <= result.ci_high <= 1
    # the interval moves in steps of 1/n: both ends are differences a resample can give
    assert (result.ci_low * 20) == pytest.approx(round(result.ci_low * 20))
    assert paired_difference(a, b, seed=1) == result  # seeded
    swapped = paired_difference(b, a, seed=1)
    assert swapped.difference == pytest.approx(-result.difference) and swapped.p_value == result.p_value


def test_ties_give_no_difference_and_a_point_interval() -> None:
    for a_cells in ((0, 0, 7, 3), (0, 0, 0, 5), (0, 0, 4, 0)):
        a, b = outcomes(*a_cells)
        result = paired_difference(a, b)
        assert (result.difference, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_empty_group_and_mismatched_arms() -> None:
    assert paired_difference([], []) is None
    with pytest.raises(ValueError, match="one of each per item"):
        paired_difference([True, False], [True])
    with pytest.raises(ValueError, match="0 < n"):
        bootstrap_interval(0, 0, 0)


def test_bootstrap_matches_resampling_the_items() -> None:
    """Drawing the three pair counts is the same distribution as resampling item indices."""
    a, b = outcomes(a_only=7, b_only=3, both=12, neither=8)  # n = 30
    n, resamples = len(a), 20_000
    indices = np.random.default_rng(3).integers(0, n, size=(resamples, n))
    per_item = np.array(a, dtype=float) - np.array(b, dtype=float)
    expected = np.quantile(per_item[indices].mean(axis=1), [0.025, 0.975])
    low, high = bootstrap_interval(n, 7, 3, resamples=resamples, seed=5)
    assert low == pytest.approx(expected[0], abs=1.01 / n) and high == pytest.approx(expected[1], abs=1.01 / n)


def test_bootstrap_width_matches_the_normal_approximation_for_many_items() -> None:
    n, a_only, b_only = 4000, 600, 400
    low, high = bootstrap_interval(n, a_only, b_only, seed=11)
    p, q = a_only / n, b_only / n
    half_width = 1.959964 * math.sqrt((p + q - (p - q) ** 2) / n)
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.08)
    assert (low + high) / 2 == pytest.approx(p - q, abs=0.004)


def test_bootstrap_interval_covers_the_true_difference() -> None:
    """Over many samples from known pair probabilities, the 95 % interval holds the truth ~95 % of the time."""
    rng = np.random.default_rng(2024)
    probabilities = [0.15, 0.05, 0.80]  # a only, b only, concordant: true difference 0.10
    trials, n, covered = 400, 150, 0
    for trial in range(trials):
        a_only, b_only, _ = rng.multinomial(n, probabilities)
        low, high = bootstrap_interval(n, int(a_only), int(b_only), seed=trial)
        covered += low <= 0.10 <= high
    assert 0.91 <= covered / trials <= 0.985
