"""Answer flips between neighbouring grid points (m1.evaluation.flips): the pairs of a real grid
config against its sorted axes, counts that sum to n and swap when the points do, per-group counts,
and a pair of points aggregated from scored rows."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from m1.evaluation.config import EvalConfig, GridPoint
from m1.evaluation.flips import Pair, compare, flip_counts, neighbour_pairs, pair_flips
from m1.evaluation.paired import mcnemar_exact
from m1.evaluation.votes import ItemResult, aggregate_point
from m1.scoring import MODES

BUDGETS, WAITS = [512, 128, 2048, 256], [0, 2, 1]


def test_neighbour_pairs_of_a_grid_follow_its_sorted_axes() -> None:
    config = EvalConfig(grid={"max_thinking_tokens": BUDGETS, "num_extensions": WAITS,
                              "early_exit": [None, {"method": "confidence"}], "prompt_suffix": ["a", "b"]})
    points = config.grid_points()
    pairs = neighbour_pairs(points)
    by_kind = {kind: {(p.before, p.after) for p in pairs if p.kind == kind} for kind in ("budget", "wait", "early_exit")}
    budgets, waits = sorted(BUDGETS), sorted(WAITS)
    expected_budget, expected_wait, expected_exit = set(), set(), set()
    for point in points:
        moved = {"budget": budgets[budgets.index(point.budget) + 1] if point.budget != budgets[-1] else None,
                 "extensions": waits[waits.index(point.extensions) + 1] if point.extensions != waits[-1] else None}
        for axis, found in (("budget", expected_budget), ("extensions", expected_wait)):
            if moved[axis] is not None:
                after = GridPoint(**{**vars(point), axis: moved[axis]})
                found.add((point.key, after.key))
        if point.early_exit is not None:
            expected_exit.add((point.fixed.key, point.key))
    assert by_kind == {"budget": expected_budget, "wait": expected_wait, "early_exit": expected_exit}
    assert len(pairs) == sum(map(len, by_kind.values()))                               # no pair twice
    assert [p.kind for p in pairs] == sorted((p.kind for p in pairs), key=["budget", "wait", "early_exit"].index)
    assert ("B128_K0_EE1_S1", "B256_K0_EE1_S1") in expected_budget                     # the keys as a reader sees them


def test_points_with_different_sample_counts_are_not_neighbours() -> None:
    points = [GridPoint(b, 0, "s", 0, samples=n) for b in (256, 512) for n in (1, 4)]
    pairs = neighbour_pairs(points)
    assert {(p.before, p.after) for p in pairs} == {("B256_K0", "B512_K0"), ("B256_K0_N4", "B512_K0_N4")}
    assert all(p.kind == "budget" for p in pairs)


def test_the_no_thinking_point_has_no_neighbours() -> None:
    assert neighbour_pairs(EvalConfig(preset="no-think").grid_points()) == []


def test_flip_counts_against_the_cells() -> None:
    rng = random.Random(1)
    for _ in range(200):
        outcomes = [(rng.random() < 0.6, rng.random() < 0.6) for _ in range(rng.randint(0, 40))]
        counts = flip_counts(outcomes)
        cells = {cell: outcomes.count(cell) for cell in itertools.product((True, False), repeat=2)}
        assert (counts.both_right, counts.right_to_wrong, counts.wrong_to_right, counts.both_wrong) == \
            (cells[True, True], cells[True, False], cells[False, True], cells[False, False])
        assert counts.n == len(outcomes) == counts.both_right + counts.right_to_wrong + counts.wrong_to_right \
            + counts.both_wrong
        assert counts.p_value == mcnemar_exact(counts.right_to_wrong, counts.wrong_to_right)


def random_answers(rng: random.Random, uids: list[str]) -> list[ItemResult]:
    answers = []
    for i, uid in enumerate(uids):
        letter = rng.choice(["A", "B", "C", None])
        answers.append(ItemResult(uid, f"src{i % 3}", "A", letter, float(letter == "A"), 100.0))
    return answers


def test_compare_is_symmetric_when_the_points_swap() -> None:
    rng = random.Random(2)
    uids = [f"u{i}" for i in range(30)]
    domain_of = {uid: rng.choice(["Cardiology", "Surgery"]) for uid in uids[:20]}   # the rest unlabelled
    for _ in range(100):
        before, after = random_answers(rng, uids), random_answers(rng, uids)
        shuffled = after[:]
        rng.shuffle(shuffled)                                        # pairing is by uid, not position
        groupings = {"sources": {a.uid: a.source for a in before}, "domains": domain_of}
        forward, backward = compare(before, shuffled, groupings), compare(after, before, groupings)
        f, b = forward.overall, backward.overall
        assert (f.right_to_wrong, f.wrong_to_right, f.both_right, f.both_wrong, f.p_value) == \
            (b.wrong_to_right, b.right_to_wrong, b.both_right, b.both_wrong, b.p_value)
        assert f.right_to_wrong + f.wrong_to_right == len(forward.flipped)
        assert {(x.uid, x.before, x.after, x.direction) for x in forward.flipped} == \
            {(x.uid, x.after, x.before, "right_to_wrong" if x.direction == "wrong_to_right" else "wrong_to_right")
             for x in backward.flipped}
        for kind in ("sources", "domains"):
            total = sum(c.n for c in forward.groups[kind].values())
            assert total == (30 if kind == "sources" else 20)
            assert sum(c.right_to_wrong for c in forward.groups[kind].values()) == \
                sum(1 for x in forward.flipped if x.direction == "right_to_wrong" and x.uid in groupings[kind])


def test_compare_refuses_shares_and_different_items() -> None:
    rng = random.Random(3)
    answers = random_answers(rng, ["u1", "u2"])
    with pytest.raises(ValueError, match="same items"):
        compare(answers, answers[:1], {})
    share = [ItemResult("u1", "s", "A", None, 0.5, 1.0), answers[1]]
    with pytest.raises(ValueError, match="not a share"):
        compare(share, answers, {})


def point_rows(rng: random.Random, golds: list[str], samples: int) -> list[dict]:
    rows = []
    for i, gold in enumerate(golds):
        for s in range(samples):
            row = {"uid": f"u{i}", "source": f"src{i % 2}", "answer_idx": gold, "sample": s, "tokens": 50}
            for mode in MODES:
                letter = rng.choice(["A", "B", "C", None])
                row |= {f"{mode}_letter": letter, f"{mode}_correct": letter == gold, f"confidence_{mode}": None}
            rows.append(row)
    return rows


def test_pair_flips_of_two_aggregated_points() -> None:
    rng = random.Random(4)
    golds = [rng.choice("ABC") for _ in range(25)]
    votes = {"B256_K0_N4": aggregate_point(point_rows(rng, golds, 4)),
             "B512_K0_N4": aggregate_point(point_rows(rng, golds, 4))}
    answers = {key: {mode: point.results[mode]["majority"] for mode in MODES} for key, point in votes.items()}
    source_of = {f"u{i}": f"src{i % 2}" for i in range(25)}
    found = pair_flips(Pair("B256_K0_N4", "B512_K0_N4", "budget"), answers, {"sources": source_of}).to_dict()
    assert set(found) == {"from", "to", "kind", *MODES}
    for mode in MODES:
        assert set(found[mode]) == {"overall", "sources", "flipped"}
        before = votes["B256_K0_N4"].correct(mode, "majority")
        after = votes["B512_K0_N4"].correct(mode, "majority")
        assert found[mode]["overall"]["right_to_wrong"] == sum(before[u] == 1.0 and after[u] == 0.0 for u in before)
        for flip in found[mode]["flipped"]:
            assert set(flip) == {"uid", "source", "gold", "from", "to", "direction"}
            assert (flip["from"] == flip["gold"]) == (flip["direction"] == "right_to_wrong")
    json.dumps(found)
