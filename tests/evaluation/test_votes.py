"""Votes over parallel samples (m1.evaluation.votes): majority, weighted and ESC against their rules
on random votes (ties, no answers, relabelled letters), pass@k against enumerating every k-subset,
and a grid point's scored rows aggregated per item whatever order the rows come in."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from m1.data.errors import DataError
from m1.evaluation.votes import (
    Vote,
    aggregate_point,
    aggregation_names,
    esc,
    majority,
    pass_at_k,
    vote_share,
    weighted,
)
from m1.scoring import MODES

LETTERS = ("A", "B", "C", "D", None)


def random_votes(rng: random.Random, n: int, *, confidences: bool = True) -> list[Vote]:
    gold = rng.choice("ABCD")
    votes = []
    for _ in range(n):
        letter = rng.choice(LETTERS)
        confidence = round(rng.random(), 2) if confidences and rng.random() < 0.8 else None
        votes.append(Vote(letter, letter == gold, confidence, rng.randint(1, 500)))
    return votes


def earliest_best(scores: dict[str, float], votes: list[Vote]) -> str:
    """The rule as stated: the highest score, a tie to the letter voted first."""
    best = max(scores.values())
    tied = [letter for letter, score in scores.items() if score == best]
    return min(tied, key=[v.letter for v in votes].index)


def relabel(votes: list[Vote], mapping: dict[str | None, str | None]) -> list[Vote]:
    return [Vote(mapping[v.letter], v.correct, v.confidence, v.tokens) for v in votes]


def test_majority_is_the_most_voted_letter_ties_to_the_first_voted() -> None:
    rng = random.Random(1)
    for _ in range(500):
        votes = random_votes(rng, rng.randint(1, 9))
        counts = {v.letter: sum(w.letter == v.letter for w in votes) for v in votes if v.letter is not None}
        expected = earliest_best(counts, votes) if counts else None
        assert majority(votes) == expected
        # renaming the letters renames the answer: the rule never looks at the letters themselves
        mapping = dict(zip(LETTERS, [*rng.sample("ABCD", 4), None]))
        assert majority(relabel(votes, mapping)) == mapping[expected]


@pytest.mark.parametrize(("letters", "expected"), [
    (["C", "B", "B", "C"], "C"),              # tie: C was voted first
    (["B", "C", "C", "B"], "B"),
    ([None, None, None, "B"], "B"),           # no answer never wins over a letter
    ([None, None], None),                     # unless every vote is no answer
    (["D", None, "A", "A"], "A"),
])
def test_majority_ties_and_no_answers(letters: list[str | None], expected: str | None) -> None:
    assert majority([Vote(letter, False, None, 1) for letter in letters]) == expected


def test_weighted_sums_confidences_and_falls_back_to_majority() -> None:
    rng = random.Random(2)
    for _ in range(500):
        votes = random_votes(rng, rng.randint(1, 9))
        weights = {v.letter: sum(w.confidence or 0.0 for w in votes if w.letter == v.letter)
                   for v in votes if v.letter is not None}
        expected = earliest_best(weights, votes) if any(weights.values()) else majority(votes)
        assert weighted(votes) == expected
        unread = [Vote(v.letter, v.correct, rng.choice([None, 0.0]), v.tokens) for v in votes]
        assert weighted(unread) == majority(unread)


def test_weighted_one_sure_vote_outweighs_two_unread() -> None:
    votes = [Vote("C", False, None, 1), Vote("C", False, None, 1), Vote("B", True, 0.9, 1)]
    assert majority(votes) == "C"
    assert weighted(votes) == "B"


def test_esc_stops_at_the_first_unanimous_window() -> None:
    rng = random.Random(3)
    for _ in range(500):
        votes, window = random_votes(rng, rng.randint(1, 10)), rng.randint(1, 4)
        letter, drawn = esc(votes, window)
        windows = [votes[i:i + window] for i in range(0, len(votes) - window + 1, window)]
        unanimous = [i for i, w in enumerate(windows) if len({v.letter for v in w}) == 1 and w[0].letter is not None]
        if unanimous:
            first = unanimous[0]
            assert (letter, drawn) == (windows[first][0].letter, (first + 1) * window)
        else:
            assert (letter, drawn) == (majority(votes), len(votes))


def test_esc_edges() -> None:
    votes = [Vote(letter, False, None, 1) for letter in [None, "B", "B", "C", "C"]]
    assert esc(votes, 1) == ("B", 2)          # the first sample with an answer
    assert esc(votes, 2) == ("B", 5)          # [None, B], [B, C] never agree; [C] is not a full window
    assert esc(votes, 6) == ("B", 5)          # no full window at all: the majority over everything
    with pytest.raises(ValueError, match="1 sample or more"):
        esc(votes, 0)


def test_pass_at_k_equals_enumerating_every_k_subset() -> None:
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))   # samples 0..c-1 are the right ones
                hit = sum(any(i < c for i in subset) for subset in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(hit, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_pass_at_k_refuses_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_vote_share() -> None:
    rng = random.Random(4)
    for _ in range(200):
        votes = random_votes(rng, rng.randint(1, 9))
        winner = majority(votes)
        expected = 0.0 if winner is None else sum(v.letter == winner for v in votes) / len(votes)
        assert vote_share(votes) == pytest.approx(expected)


def scored_rows(rng: random.Random, items: int, samples: int, *, with_sample: bool = True) -> list[dict]:
    """A point's scored.jsonl rows; strict and reference letters drawn apart, so that mixing the
    modes up shows."""
    rows = []
    for i in range(items):
        gold = rng.choice("ABCD")
        for s in range(samples):
            row = {"uid": f"u{i}", "source": f"src{i % 3}", "answer_idx": gold, "tokens": rng.randint(1, 900)}
            if with_sample:
                row["sample"] = s
            for mode in MODES:
                letter = rng.choice(LETTERS)
                confidence = None if rng.random() < 0.2 else (0.0 if letter is None else rng.random())
                row |= {f"{mode}_letter": letter, f"{mode}_correct": letter == gold, f"confidence_{mode}": confidence}
            rows.append(row)
    return rows


def test_aggregate_point_per_item_whatever_the_row_order() -> None:
    rng = random.Random(5)
    for samples in (1, 2, 4, 5):
        rows = scored_rows(rng, 12, samples)
        shuffled = rows[:]
        rng.shuffle(shuffled)
        point, again = aggregate_point(rows, windows=(2, 3)), aggregate_point(shuffled, windows=(2, 3))
        assert point.samples == samples
        for mode in MODES:
            assert list(point.results[mode]) == list(aggregation_names((2, 3)))
            for name in aggregation_names((2, 3)):
                assert point.correct(mode, name) == again.correct(mode, name)
                assert point.tokens(mode, name) == again.tokens(mode, name)
            for item in point.results[mode]["majority"]:
                mine = [r for r in rows if r["uid"] == item.uid]
                votes = [Vote(r[f"{mode}_letter"], r[f"{mode}_correct"], r[f"confidence_{mode}"], r["tokens"])
                         for r in mine]
                assert item.letter == majority(votes) and item.correct == float(item.letter == item.gold)
                assert point.tokens(mode, "sample")[item.uid] == pytest.approx(sum(v.tokens for v in votes) / samples)
                assert point.tokens(mode, "weighted")[item.uid] == sum(v.tokens for v in votes)
                assert point.correct(mode, "weighted")[item.uid] == float(weighted(votes) == item.gold)
                assert point.correct(mode, "sample")[item.uid] == pytest.approx(sum(v.correct for v in votes) / samples)
                letter, drawn = esc(votes, 3)
                assert point.tokens(mode, "esc3")[item.uid] == sum(v.tokens for v in votes[:drawn])
            # pass@1 is the mean single-sample accuracy; pass@N whether any sample was right
            accuracy = sum(point.correct(mode, "sample").values()) / 12
            assert point.pass_at_k[mode][1] == pytest.approx(accuracy)
            anyone = {r["uid"] for r in rows if r[f"{mode}_correct"]}
            assert point.pass_at_k[mode][samples] == pytest.approx(len(anyone) / 12)
            assert list(point.pass_at_k[mode]) == list(range(1, samples + 1))
        json.dumps(point.to_dict())   # the summary it goes into is JSON


def test_one_sample_points_need_no_sample_field_and_every_aggregation_is_the_answer() -> None:
    rows = scored_rows(random.Random(6), 20, 1, with_sample=False)
    point = aggregate_point(rows)
    for mode in MODES:
        expected = {r["uid"]: float(r[f"{mode}_correct"]) for r in rows}
        for name in aggregation_names():
            assert point.correct(mode, name) == expected
            assert point.tokens(mode, name) == {r["uid"]: r["tokens"] for r in rows}


def test_each_mode_votes_with_its_own_letters() -> None:
    rows = [{"uid": "u", "source": "s", "answer_idx": "A", "sample": s, "tokens": 10,
             "strict_letter": strict, "strict_correct": strict == "A", "confidence_strict": None,
             "reference_letter": "A", "reference_correct": True, "confidence_reference": 0.5}
            for s, strict in enumerate(["B", "B", "A"])]
    point = aggregate_point(rows)
    assert point.results["strict"]["majority"][0].letter == "B"
    assert point.results["reference"]["majority"][0].letter == "A"
    assert point.tokens("strict", "esc2") == {"u": 20} and point.tokens("reference", "esc2") == {"u": 20}


@pytest.mark.parametrize(("change", "field", "problem"), [
    (lambda rows: rows[3].pop("tokens"), "tokens", "missing"),
    (lambda rows: rows[3].update(sample=0), "sample", "sample 0 twice"),
    (lambda rows: rows[3].update(confidence_strict=1.5), "confidence_strict", "not a probability"),
    (lambda rows: rows[3].update(reference_correct="yes"), "reference_correct", "not true or false"),
    (lambda rows: rows[3].update(answer_idx="Z"), "answer_idx", "earlier row"),
    (lambda rows: rows[3].update(tokens=-2), "tokens", "not a token count"),
])
def test_bad_rows_are_named(change, field: str, problem: str) -> None:
    rows = scored_rows(random.Random(7), 3, 2)     # row 4 is the second sample of item u1
    change(rows)
    with pytest.raises(DataError) as caught:
        aggregate_point(rows, where="runs/x/points/B512_K0_N2/scored.jsonl")
    assert caught.value.problem.field == field and problem in caught.value.problem.problem
    assert caught.value.problem.file.endswith("scored.jsonl") and caught.value.problem.row == "4"


def test_an_unfinished_item_is_refused() -> None:
    rows = [r for r in scored_rows(random.Random(8), 3, 4) if not (r["uid"] == "u2" and r["sample"] == 1)]
    with pytest.raises(DataError, match=r"item u2 has samples \[0, 2, 3\], expected 0..3"):
        aggregate_point(rows)


@pytest.mark.parametrize("windows", [(0,), (2, 2)])
def test_bad_windows_are_refused(windows: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="ESC windows"):
        aggregate_point(scored_rows(random.Random(9), 2, 2), windows=windows)
