"""Hub pool loaders, run through `datasets` on local files written in each pool's Hub schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from m1.data.errors import DataError
from m1.data.hub import HUB_POOLS, convert_rows, load_hub_pool
from m1.data.items import make_uid
from m1.data.loaders import PUBMEDQA_INSTRUCTION


def test_every_paper_pool_is_declared() -> None:
    assert {pool.hub_id for pool in HUB_POOLS.values()} == {
        "GBaker/MedQA-USMLE-4-options", "openlifescienceai/medmcqa", "qiaojin/PubMedQA", "openlifescienceai/headqa",
    }
    assert HUB_POOLS["pubmedqa"].config == "pqa_labeled"


def test_medqa(fixtures: Path) -> None:
    items = load_hub_pool("medqa", data_files=fixtures / "hub/medqa.jsonl")
    assert [(i.answer_idx, i.answer) for i in items] == [("B", "Escherichia coli"), ("C", "Vitamin C")]
    assert items[0].metadata["meta_info"] == "step2&3"


def test_medmcqa_cop_is_zero_based(fixtures: Path) -> None:
    items = load_hub_pool("medmcqa", data_files=fixtures / "hub/medmcqa.jsonl")
    assert [(i.answer_idx, i.answer) for i in items] == [("C", "Atrophy"), ("A", "Ethosuximide")]
    assert items[0].uid == make_uid("MedMCQA", "e9ad821a-c438-4965-9f77-760819dfa155")
    assert items[0].metadata["subject_name"] == "Anatomy"


def test_pubmedqa_context_first(fixtures: Path) -> None:
    items = load_hub_pool("pubmedqa", data_files=fixtures / "hub/pubmedqa.jsonl")
    first = items[0]
    assert first.question.startswith("We enrolled 120 adults over 65. Resting blood pressure fell")
    assert first.question.endswith(f"{PUBMEDQA_INSTRUCTION}\nDoes regular exercise lower resting blood pressure in older adults?")
    assert first.options == {"A": "yes", "B": "no", "C": "maybe"}
    assert [i.answer for i in items] == ["yes", "maybe"]
    assert first.metadata["pmid"] == "11111111"


def test_headqa(fixtures: Path) -> None:
    items = load_hub_pool("headqa", data_files=fixtures / "hub/headqa.jsonl")
    assert [(i.answer_idx, i.answer) for i in items] == [("B", "Hypokalemia"), ("B", "12-20 breaths/min")]
    assert items[1].metadata["subject_name"] == "nursing"


def test_bad_hub_row_is_named() -> None:
    rows = [{"id": "x", "question": "Q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 7}]
    with pytest.raises(DataError) as caught:
        convert_rows("medmcqa", rows, where="hf://openlifescienceai/medmcqa")
    # The field is the dataset's own column, which is what the person has to fix.
    assert (caught.value.problem.row, caught.value.problem.field) == ("0", "cop")
    assert "not one of 0–3" in caught.value.problem.problem
    with pytest.raises(DataError, match="unknown pool"):
        convert_rows("medqa2", rows, where="x")
