"""Curation test helpers: rows in the shared schema, and small evaluation suites cut from the real one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from m1.curation.sft_format import sft_prompt
from m1.data.items import make_uid
from m1.data.suite import SUITE_FILE_NAME


def make_row(question: str, options: dict[str, str], answer_idx: str = "A", *, source: str = "MedQA",
             uid: str | None = None, **sections: Any) -> dict[str, Any]:
    """A row as ingest writes it (the schema every stage shares), plus any later sections."""
    return {"uid": uid or make_uid(source, question + json.dumps(options)), "source": source, "pool": source.lower(),
            "question": question, "options": options, "answer_idx": answer_idx, "answer": options[answer_idx],
            "prompt": sft_prompt(question, options), "metadata": {}, **sections}


@pytest.fixture(scope="session")
def real_suite(shared_data: Path) -> dict[str, list[dict[str, Any]]]:
    """The published partial evaluation suite, as raw records."""
    return json.loads((shared_data / "eval" / SUITE_FILE_NAME).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def small_suite(real_suite: dict[str, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 250-item suite in the m1 format: real items of three sources, including the three
    MedMCQA_validation items that the HuatuoGPT-o1 demo pool also contains (indices 700, 3946, 4042)."""
    medmcqa = real_suite["MedMCQA_validation"]
    subset = {
        "MedMCQA_validation": medmcqa[:100] + [medmcqa[700], medmcqa[3946], medmcqa[4042]],
        "MedQA_USLME_test": real_suite["MedQA_USLME_test"][:100],
        "MMLU-Pro_Medical_test": real_suite["MMLU-Pro_Medical_test"][:47],
    }
    path = tmp_path_factory.mktemp("suite") / "small_suite.json"
    path.write_text(json.dumps(subset, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
