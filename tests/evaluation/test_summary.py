"""The typed run summary (`m1.evaluation.summary`): a metrics.json as `score_run` writes it reads
into fields, the sections of issue 14 are optional, and a malformed summary is a DataError that
names the file, the grid point and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m1.data.errors import DataError
from m1.evaluation.summary import RunSummary
from m1.scoring import ScoredRow, mode_metrics

SOURCES = {"MedQA_USLME_test": 6, "PubMedQA_test": 4}


def point(key: str, budget: int | None, right: int) -> dict:
    """A grid point's entry as score_run writes it: the first `right` items of each source correct."""
    rows = [ScoredRow(f"{source}-{i}", source, "A", "A" if i < right else "B", "boxed_letter", i < right)
            for source, size in SOURCES.items() for i in range(size)]
    modes = {mode: mode_metrics(rows, mode).to_dict() for mode in ("strict", "reference")}
    thinking = [10 * (i + 1) for i in range(len(rows))]
    return {"point": key, "budget": budget, "extensions": 0, "suffix": "", **modes, "disagreement": 0,
            "usage": {"thinking_tokens_mean": sum(thinking) / len(thinking), "thinking_tokens": thinking,
                      "budget_hit_rate": 0.25, "thinking_end": {"natural_stop": len(rows)}}}


def write(tmp_path: Path, summary: dict) -> Path:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(summary))
    return path


def base() -> dict:
    return {"run": "r", "model": "m", "backend": "transformers", "preset": "m1", "items": 10,
            "points": [point("B128_K0", 128, 2), point("B512_K0", 512, 3)]}


def test_todays_summary_reads_into_fields_and_the_new_sections_are_empty(tmp_path: Path) -> None:
    summary = RunSummary.read(write(tmp_path, base()))
    first = summary.points[0]
    assert first.strict.micro.correct == 2 * len(SOURCES) and first.strict.micro.items == sum(SOURCES.values())
    assert [s.source for s in first.reference.sources] == list(SOURCES)
    assert first.usage.thinking_tokens[:2] == [10, 20] and first.usage.total_tokens_mean is None
    assert first.samples == 1 and first.calibration is None
    assert summary.policies == [] and summary.flips == [] and summary.domains is None


def test_new_sections_read_with_their_json_names(tmp_path: Path) -> None:
    counts = {"n": 10, "right_to_wrong": 1, "wrong_to_right": 3, "both_right": 4, "both_wrong": 2, "p_value": 0.625}
    flipped = {"uid": "PubMedQA_test-1", "source": "PubMedQA_test", "gold": "A", "from": None, "to": "A",
               "direction": "wrong_to_right"}
    data = base() | {"flips": [{"from": "B128_K0", "to": "B512_K0", "kind": "budget",
                                "strict": {"overall": counts, "sources": {"PubMedQA_test": counts},
                                           "flipped": [flipped]},
                                "reference": {"overall": counts}}],
                     "domains": {"file": "labels.jsonl", "sha256": "ab" * 32, "labelled": 9, "unlabelled": ["x"]}}
    summary = RunSummary.read(write(tmp_path, data))
    [flips] = summary.flips
    assert (flips.from_, flips.to, flips.kind) == ("B128_K0", "B512_K0", "budget")
    item = flips.mode("strict").flipped[0]
    assert (item.from_, item.to, item.direction) == (None, "A", "wrong_to_right")
    assert flips.mode("reference").flipped == [] and summary.domains.unlabelled == ["x"]


@pytest.mark.parametrize(("change", "row", "field", "problem"), [
    (lambda s: s["points"][1].pop("reference"), "points[1]", "reference", "missing"),
    (lambda s: s["points"][0]["strict"]["micro"].update(accuracy="high"), "points[0]", "strict.micro.accuracy",
     "valid number"),
    (lambda s: s["points"][0]["usage"].update(thinking_tokens="many"), "points[0]", "usage.thinking_tokens",
     "valid list"),
    (lambda s: s.update(flips=[{"from": "a", "to": "b", "kind": "sideways"}]), "flips[0]", "kind", "'budget'"),
])
def test_a_malformed_summary_names_the_point_and_the_field(tmp_path: Path, change, row, field, problem) -> None:
    data = base()
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(DataError) as caught:
        RunSummary.read(path)
    where = caught.value.problem
    assert (where.file, where.row, where.field) == (str(path), row, field)
    assert problem in where.problem and "m1 eval" in where.fix


def test_what_is_not_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        RunSummary.read(path)
    with pytest.raises(DataError, match="not a run summary"):
        RunSummary.read(write(tmp_path, {"points": {}}))
