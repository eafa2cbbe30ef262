"""Calibration of the answer's probability (m1.evaluation.calibration): ECE near 0 for calibrated and
at the known gap for overconfident synthetic answers, bins, the selective curve and the target
threshold against their definitions by brute force, ties, missing reads and item order."""

from __future__ import annotations

import json
import random

import pytest

from m1.evaluation.calibration import Judged, calibration

SHAPE = {"n", "with_probability", "missing", "ece", "bins", "selective", "target"}


def synthetic(rng: random.Random, n: int, honesty: float = 1.0, *, missing: float = 0.0,
              levels: int | None = None) -> list[Judged]:
    """Answers right with probability honesty × confidence; `levels` rounds confidences so they tie."""
    items = []
    for i in range(n):
        confidence = rng.random()
        if levels:
            confidence = round(confidence * levels) / levels
        right = rng.random() < honesty * confidence
        items.append(Judged(f"u{i}", None if rng.random() < missing else confidence, right))
    return items


def test_calibrated_answers_have_an_ece_near_zero() -> None:
    result = calibration(synthetic(random.Random(1), 20_000))
    assert result.ece < 0.02


def test_overconfident_answers_have_the_ece_of_their_gap() -> None:
    # right half as often as claimed: the gap in every bin is half its confidence, 0.25 on average
    result = calibration(synthetic(random.Random(2), 20_000, honesty=0.5))
    assert result.ece == pytest.approx(0.25, abs=0.02)


def brute_bins(read: list[Judged]) -> list[list[Judged]]:
    return [[j for j in read if i / 10 <= j.confidence < (i + 1) / 10 or (i == 9 and j.confidence == 1.0)]
            for i in range(10)]


def test_bins_ece_and_missing_against_their_definitions() -> None:
    rng = random.Random(3)
    for _ in range(100):
        items = synthetic(rng, rng.randint(1, 80), honesty=rng.random(), missing=0.2, levels=rng.choice([None, 10, 4]))
        result = calibration(items)
        read = [j for j in items if j.confidence is not None]
        assert (result.n, result.with_probability) == (len(items), len(read))
        assert result.missing == tuple(j.uid for j in items if j.confidence is None)
        expected_ece = 0.0
        for found, members in zip(result.bins, brute_bins(read), strict=True):
            assert found.count == len(members)
            if members:
                accuracy = sum(j.correct for j in members) / len(members)
                confidence = sum(j.confidence for j in members) / len(members)
                assert found.low - 1e-12 <= found.confidence <= found.high + 1e-12   # a mean, to rounding
                assert (found.accuracy, found.confidence) == pytest.approx((accuracy, confidence))
                expected_ece += len(members) / len(read) * abs(accuracy - confidence)
            else:
                assert found.accuracy is found.confidence is None
        assert [(b.low, b.high) for b in result.bins] == [(i / 10, (i + 1) / 10) for i in range(10)]
        assert result.ece == (pytest.approx(expected_ece) if read else None)


def test_selective_curve_and_target_against_brute_force() -> None:
    rng = random.Random(4)
    for _ in range(100):
        items = synthetic(rng, rng.randint(1, 60), missing=0.1, levels=rng.choice([None, 10, 3]))
        target = rng.choice([0.5, 0.8, 0.9, 1.0])
        result = calibration(items, target=target)
        read = [j for j in items if j.confidence is not None]
        curve = result.selective
        assert (curve[0].threshold, curve[0].coverage, curve[0].accuracy) == (None, 0.0, None)
        assert [s.threshold for s in curve[1:]] == sorted({j.confidence for j in read}, reverse=True)
        for point in curve[1:]:
            answered = [j for j in read if j.confidence >= point.threshold]
            assert point.coverage == pytest.approx(len(answered) / len(read))
            assert point.accuracy == pytest.approx(sum(j.correct for j in answered) / len(answered))
        good = [s for s in curve[1:] if sum(j.correct for j in read if j.confidence >= s.threshold)
                >= target * sum(1 for j in read if j.confidence >= s.threshold) - 1e-9]
        best = min(good, key=lambda s: s.threshold, default=None)
        assert result.target.accuracy == target
        assert (result.target.threshold, result.target.coverage) == \
            ((None, None) if best is None else (best.threshold, best.coverage))


def test_the_target_takes_the_lowest_threshold_even_past_a_dip() -> None:
    # accuracy by threshold: 0.9 -> 1/1, 0.8 -> 1/2, 0.6 -> 3/4: a 0.75 target is reached at 0.6, not 0.9
    items = [Judged("a", 0.9, True), Judged("b", 0.8, False), Judged("c", 0.6, True), Judged("d", 0.6, True)]
    result = calibration(items, target=0.75)
    assert (result.target.threshold, result.target.coverage) == (0.6, 1.0)
    assert calibration([Judged("a", 0.7, False)], target=0.5).target.threshold is None


def test_the_result_does_not_depend_on_item_order() -> None:
    rng = random.Random(5)
    items = synthetic(rng, 300, missing=0.1, levels=20)
    shuffled = items[:]
    rng.shuffle(shuffled)
    a, b = calibration(items).to_dict(), calibration(shuffled).to_dict()
    assert sorted(a.pop("missing")) == sorted(b.pop("missing"))
    assert a["ece"] == pytest.approx(b["ece"])
    assert (a["n"], a["with_probability"], a["selective"], a["target"]) == \
        (b["n"], b["with_probability"], b["selective"], b["target"])
    for x, y in zip(a["bins"], b["bins"], strict=True):
        assert (x["count"], x["accuracy"]) == (y["count"], y["accuracy"])
        assert x["confidence"] == pytest.approx(y["confidence"])     # a mean, summed in another order


def test_shape_with_nothing_read() -> None:
    result = calibration([Judged("a", None, True), Judged("b", None, False)]).to_dict()
    assert set(result) == SHAPE
    assert (result["n"], result["with_probability"], result["missing"], result["ece"]) == (2, 0, ["a", "b"], None)
    assert [b["count"] for b in result["bins"]] == [0] * 10
    assert set(result["bins"][0]) == {"low", "high", "count", "confidence", "accuracy"}
    assert result["selective"] == [{"threshold": None, "coverage": 0.0, "accuracy": None}]
    assert result["target"] == {"accuracy": 0.9, "threshold": None, "coverage": None}
    json.dumps(result)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="item b: confidence 1.5"):
        calibration([Judged("a", 0.5, True), Judged("b", 1.5, True)])
    with pytest.raises(ValueError, match="target accuracy is a share"):
        calibration([], target=0.0)
