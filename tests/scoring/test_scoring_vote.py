"""The vote rule (`m1.scoring.vote`) that evaluation and `m1 serve` share: majority, weighted,
ties to the answer voted first, shares, and free-form normalisation."""

from __future__ import annotations

import itertools

import pytest

from m1.scoring.vote import Decision, decide, majority, normalise_answer, weighted


def test_majority_counts_and_share() -> None:
    assert decide("majority", ["B", "C", "B", None]) == Decision("majority", "B", 0.5, {"B": 2, "C": 1})
    assert decide("majority", [None, None]) == Decision("majority", None, 0.0, {})


@pytest.mark.parametrize("order", list(itertools.permutations(["A", "B", "C"])))
def test_a_tie_goes_to_the_answer_voted_first(order) -> None:
    answers = [*order, *order]
    assert majority(answers) == order[0]
    assert weighted(answers, [0.5] * 6) == order[0]


def test_weighted_sums_weights_and_falls_back_to_majority_without_any() -> None:
    found = decide("weighted", ["B", "C", "B"], [0.2, 0.9, 0.3])
    assert found.answer == "C" and found.votes == {"B": 0.5, "C": 0.9}
    assert found.share == pytest.approx(0.9 / 1.4)
    unread = decide("weighted", ["B", "C", "C"], [None, None, 0.0])
    assert (unread.answer, unread.share) == ("C", pytest.approx(2 / 3))
    with pytest.raises(ValueError):
        decide("weighted", ["B"])
    with pytest.raises(ValueError):
        decide("plurality", ["B"])


@pytest.mark.parametrize(("text", "form"), [("  The  Liver. ", "the liver"), ("VITAMIN C!", "vitamin c"),
                                            ("a\n\tb", "a b"), ("...", None), ("", None), (None, None)])
def test_free_form_answers_are_normalised(text, form) -> None:
    assert normalise_answer(text) == form
