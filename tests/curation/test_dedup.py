"""Dedup: exact and near duplicates leave naming their kept twin; option order never matters."""

from __future__ import annotations

import pytest

from m1.curation.dedup import DedupConfig, Deduplicate
from m1.curation.stage import Drop
from m1.data.errors import DataError

from .conftest import make_row

STEM = ("A 30-year-old woman has fatigue, weight gain, cold intolerance and constipation for six months. "
        "Her TSH is elevated and free T4 is low. Which antibody is most likely present?")
OPTIONS = {"A": "Anti-thyroid peroxidase", "B": "TSH receptor stimulating", "C": "Anti-centromere", "D": "Anti-Smith"}


def rows_with_copies() -> list[dict]:
    original = make_row(STEM, OPTIONS, uid="original")
    return [
        original,
        make_row("  " + STEM.upper().replace(" ", "   "), OPTIONS, uid="case-and-spacing"),
        make_row(STEM.replace(",", "").replace("?", ""), OPTIONS, uid="punctuation"),
        make_row(STEM, dict(zip("ABCD", reversed(OPTIONS.values()))), "D", uid="option-order"),
        make_row(STEM.replace("six months", "6 months"), OPTIONS, uid="small-edit"),
        make_row(STEM.replace("Which antibody is most likely present?", "What is the treatment?"),
                 {"A": "Levothyroxine", "B": "Methimazole", "C": "Radioiodine", "D": "Thyroidectomy"},
                 uid="different-ask"),
        make_row("Which drug is first line for absence seizures in children?",
                 {"A": "Ethosuximide", "B": "Phenytoin", "C": "Carbamazepine", "D": "Gabapentin"}, uid="unrelated"),
    ]


def outcomes_by_uid(stage: Deduplicate, rows: list[dict]) -> dict[str, object]:
    return {row["uid"]: outcome for row, outcome in zip(rows, stage.process_all(rows))}


def test_minhash_dedup_drops_copies_and_names_the_kept_twin() -> None:
    result = outcomes_by_uid(Deduplicate(DedupConfig()), rows_with_copies())
    assert not isinstance(result["original"], Drop)
    for uid in ("case-and-spacing", "punctuation", "option-order"):
        assert result[uid] == Drop("exact duplicate", "twin of kept row original (exact)")
    assert result["small-edit"].reason == "near duplicate"
    assert result["small-edit"].detail.startswith("twin of kept row original (similarity 0.9")
    assert not isinstance(result["different-ask"], Drop)  # the same case, another question
    assert not isinstance(result["unrelated"], Drop)


def test_first_row_in_input_order_is_the_one_kept() -> None:
    rows = list(reversed(rows_with_copies()))
    result = outcomes_by_uid(Deduplicate(DedupConfig()), rows)
    assert not isinstance(result["small-edit"], Drop)
    assert result["original"].reason in ("exact duplicate", "near duplicate")


def test_reference_rule_misses_what_normalising_catches() -> None:
    """The paper's raw-text fuzz.ratio >= 95 finds the light edits but not reordered options."""
    result = outcomes_by_uid(Deduplicate(DedupConfig(method="reference")), rows_with_copies())
    assert result["punctuation"].reason == "near duplicate" and "original" in result["punctuation"].detail
    assert result["small-edit"].reason == "near duplicate"
    assert not isinstance(result["option-order"], Drop)
    assert not isinstance(result["case-and-spacing"], Drop)


def test_reference_rule_refuses_too_many_rows() -> None:
    rows = [make_row(f"question {i}", {"A": "x", "B": "y"}) for i in range(11)]
    with pytest.raises(DataError, match="dedup.reference_max_rows.*exceed the cap of 10"):
        Deduplicate(DedupConfig(method="reference", reference_max_rows=10)).process_all(rows)
