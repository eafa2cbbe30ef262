"""Decontamination against real evaluation items, in both views, with every hit named."""

from __future__ import annotations

from pathlib import Path

import pytest

from m1.curation.decontaminate import DecontamConfig, Decontaminate
from m1.curation.stage import Drop, dropped_rows, run_stage
from m1.data.errors import DataError
from m1.data.suite import load_suite

from .conftest import make_row


@pytest.fixture(scope="module")
def suite_items(small_suite: Path) -> dict:
    return load_suite(small_suite)


def stage_for(suite: Path, **settings) -> Decontaminate:
    return Decontaminate(DecontamConfig(suite=str(suite), **settings))


def test_copies_of_real_eval_items_are_caught_in_both_views(small_suite: Path, suite_items: dict,
                                                            tmp_path: Path) -> None:
    medqa = suite_items["MedQA_USLME_test"][0]
    reordered = dict(zip("ABCD", reversed(list(medqa.options.values()))))
    rows = [
        # A training copy with the options shuffled and the text re-cased: the question+options view.
        make_row(medqa.question.upper(), reordered, "A", uid="copied"),
        # The same evaluation question asked with other options: only the question view sees it.
        make_row(medqa.question, {"A": "Call the hospital lawyer", "B": "Do nothing"}, uid="same-question"),
        # A light edit of another item: a near match with its similarity.
        make_row(suite_items["MedQA_USLME_test"][1].question.replace("most likely", "probably"),
                 suite_items["MedQA_USLME_test"][1].options, uid="edited"),
        make_row("Which vitamin deficiency causes scurvy in sailors on long voyages without fresh fruit?",
                 {"A": "Vitamin C", "B": "Vitamin D"}, uid="clean"),
    ]
    stage = stage_for(small_suite)
    manifest = run_stage(stage, rows, tmp_path / "03_decontaminate", upstream="test")
    assert manifest["rows_out"] == 1 and manifest["dropped"] == {"contaminated: MedQA_USLME_test": 3}
    details = {row["uid"]: row["detail"] for row in dropped_rows(tmp_path / "03_decontaminate")}
    key = f"MedQA_USLME_test/{medqa.uid}"
    assert details["copied"] == f"{key} (question+options view, exact); {key} (question view, exact)"
    assert details["same-question"] == f"{key} (question view, exact)"
    edited_key = f"MedQA_USLME_test/{suite_items['MedQA_USLME_test'][1].uid}"
    assert details["edited"].startswith(f"{edited_key} (question+options view, similarity 0.9")
    assert manifest["extra"]["matches_by_view"] == {"question+options": 2, "question": 3}


def test_short_questions_are_compared_with_their_options_only(small_suite: Path, suite_items: dict) -> None:
    short = next(item for item in suite_items["MedMCQA_validation"] if len(item.question.split()) < 5)
    rows = [make_row(short.question, {"A": "something else", "B": "entirely"}, uid="short-other-options"),
            make_row(short.question, short.options, short.answer_idx, uid="short-same-options")]
    outcomes = stage_for(small_suite).process_batch(rows)
    assert not isinstance(outcomes[0], Drop)
    assert outcomes[1].reason == "contaminated: MedMCQA_validation"
    assert "(question+options view, exact)" in outcomes[1].detail


def test_excluded_and_unknown_sources(small_suite: Path, suite_items: dict) -> None:
    medqa = suite_items["MedQA_USLME_test"][0]
    row = make_row(medqa.question, medqa.options, medqa.answer_idx)
    assert stage_for(small_suite, exclude_eval_sources=["MedQA_USLME_test"]).process_batch([row]) == [row]
    with pytest.raises(DataError, match="no evaluation source named Lancet"):
        stage_for(small_suite, eval_sources=["Lancet"]).process_batch([row])


def test_reference_rule_compares_raw_text(small_suite: Path, suite_items: dict) -> None:
    medqa = suite_items["MedQA_USLME_test"][0]
    reordered = dict(zip("ABCD", reversed(list(medqa.options.values()))))
    rows = [make_row(medqa.question, medqa.options, medqa.answer_idx, uid="verbatim"),
            make_row(medqa.question.upper(), reordered, "A", uid="recased-reordered")]
    verbatim, recased = stage_for(small_suite, method="reference").process_batch(rows)
    assert verbatim.reason == "contaminated: MedQA_USLME_test" and "exact" in verbatim.detail
    assert not isinstance(recased, Drop)  # what the minhash method catches (first test) the raw rule misses
