"""The compute-optimal sections of a run summary (m1.evaluation.analysis) on synthetic scored rows:
which policies a grid yields, how each is costed, and that frontier, flips and calibration are
computed on the same items."""

from __future__ import annotations

import random

import pytest

from m1.engine.prompt import BOXED_SUFFIX
from m1.evaluation.analysis import SELECTIVE_POINTS, analyse
from m1.evaluation.config import GridPoint
from m1.scoring import MODES

LETTERS = "ABCD"


def point(budget: int, samples: int = 1) -> GridPoint:
    return GridPoint(budget, 0, BOXED_SUFFIX, 0, samples=samples)


def scored_rows(p: GridPoint, uids: list[str], rng: random.Random, *, read: bool = True) -> list[dict]:
    rows = []
    for uid in uids:
        for sample in range(p.samples):
            letter = rng.choice(LETTERS + "-")
            letter = None if letter == "-" else letter
            row = {"uid": uid, "source": "S1" if uid < "q5" else "S2", "answer_idx": "A", "tokens": rng.randint(10, 90),
                   "read_tokens": 3 if read else 0}
            if p.samples > 1:
                row["sample"] = sample
            for mode in MODES:
                row |= {f"{mode}_letter": letter, f"{mode}_correct": letter == "A", f"{mode}_rule": "boxed",
                        f"confidence_{mode}": (rng.random() if letter else 0.0) if read else None}
            rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(3))
def test_policies_frontier_and_flips_of_a_mixed_grid(seed: int) -> None:
    rng = random.Random(seed)
    uids = [f"q{i}" for i in range(10)]
    points = [point(32), point(64), point(32, samples=3)]
    scored = {p.key: scored_rows(p, uids, rng) for p in points}
    wall = {"B32_K0": 10.0, "B64_K0": 20.0, "B32_K0_N3": 30.0}
    sections = analyse(points, scored, wall, {"sources": {uid: "S1" if uid < "q5" else "S2" for uid in uids}})

    names = [entry["policy"] for entry in sections.policies]
    assert names == ["B32_K0", "B64_K0", "B32_K0_N3:sample", "B32_K0_N3:majority", "B32_K0_N3:weighted",
                     "B32_K0_N3:esc2"]
    by_name = {entry["policy"]: entry for entry in sections.policies}
    sampled = scored["B32_K0_N3"]
    all_tokens = sum(row["tokens"] for row in sampled) / len(uids)
    assert by_name["B32_K0_N3:majority"]["tokens_mean"] == pytest.approx(all_tokens)
    # The weighted vote pays for the reads behind its weights; one sample costs a third of all three.
    assert by_name["B32_K0_N3:weighted"]["tokens_mean"] == pytest.approx(all_tokens + 3 * 3)
    assert by_name["B32_K0_N3:sample"]["tokens_mean"] == pytest.approx(all_tokens / 3)
    assert by_name["B32_K0_N3:sample"]["wall_seconds_per_item"] == pytest.approx(30.0 / len(uids) / 3)
    assert by_name["B32_K0"]["wall_seconds_per_item"] == pytest.approx(1.0)
    for entry in sections.policies:
        for mode in MODES:
            overall = entry[mode]["overall"]
            assert overall["n"] == len(uids) and overall["ci_low"] <= overall["accuracy"] <= overall["ci_high"]
            assert sum(group["n"] for group in entry[mode]["sources"].values()) == len(uids)
        assert ("pass_at_k" in entry["strict"]) == (entry["aggregation"] in ("majority", "weighted", "esc2"))

    for mode in MODES:
        frontier = sections.frontier[mode]
        assert frontier["pareto"] and set(frontier["pareto"]) <= set(names)
        assert frontier["cheapest"]["overall"] in names and set(frontier["cheapest"]["sources"]) == {"S1", "S2"}
    # Neighbours share every other axis, samples included: only B32 -> B64 of the one-sample points.
    assert [(f["from"], f["to"], f["kind"]) for f in sections.flips] == [("B32_K0", "B64_K0", "budget")]
    counts = sections.flips[0]["strict"]["overall"]
    assert counts["right_to_wrong"] + counts["wrong_to_right"] + counts["both_right"] + counts["both_wrong"] == len(uids)


def test_calibration_of_every_point_counts_every_sample_and_keeps_a_bounded_curve() -> None:
    rng = random.Random(7)
    uids = [f"q{i:04d}" for i in range(400)]
    points = [point(32), point(32, samples=2), point(64)]
    scored = {points[0].key: scored_rows(points[0], uids, rng), points[1].key: scored_rows(points[1], uids, rng),
              points[2].key: scored_rows(points[2], uids, rng, read=False)}
    sections = analyse(points, scored, {}, {"sources": {}})
    nothing = sections.calibration["B64_K0"]["strict"]  # read nothing: counted and named, no figures
    assert nothing["with_probability"] == 0 and nothing["ece"] is None and len(nothing["missing"]) == 400
    assert nothing["target"]["threshold"] is None and [p["coverage"] for p in nothing["selective"]] == [0.0]
    one, two = sections.calibration["B32_K0"]["strict"], sections.calibration["B32_K0_N2"]["strict"]
    assert one["n"] == 400 and two["n"] == 800 and not two["missing"]
    assert len(one["selective"]) <= SELECTIVE_POINTS + 1 and one["selective"][-1]["coverage"] == 1.0
    if one["target"]["threshold"] is not None:  # the target's own threshold survives the thinning
        assert one["target"]["threshold"] in [p["threshold"] for p in one["selective"]]
    assert 0.0 <= one["ece"] <= 1.0
    entry = next(e for e in sections.policies if e["policy"] == "B64_K0")
    assert entry["wall_seconds_per_item"] is None  # no timing recorded: unknown, not zero
