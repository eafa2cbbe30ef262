"""Predictions files: reading (every error names file, line, field), scoring, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m1.data.errors import DataError
from m1.scoring import (
    PredictionRow,
    build_report,
    read_predictions,
    score_command_result,
    score_predictions,
)

ORGANS = {"A": "Liver", "B": "Kidney", "C": "Heart", "D": "Lung"}


def record(uid: str, reply: str, answer: str = "B", source: str = "MedQA", **extra) -> dict:
    return {"uid": uid, "source": source, "options": ORGANS, "answer_idx": answer, "reply": reply, **extra}


def write(path: Path, lines: list) -> Path:
    texts = [line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines]
    path.write_text("".join(text + "\n" for text in texts), encoding="utf-8")
    return path


def test_read_predictions_keeps_extra_fields_and_line_numbers(tmp_path):
    path = write(tmp_path / "p.jsonl", [record("u1", "\\boxed{B}", budget=4096), "", record("u2", "")])
    rows = read_predictions(path)
    assert [(r.uid, r.line) for r in rows] == [("u1", 1), ("u2", 3)]
    assert rows[0].extra == {"budget": 4096}
    assert rows[0].options == ORGANS
    assert rows[0].to_record() == record("u1", "\\boxed{B}", budget=4096)
    assert rows[1].reply == ""


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_a_reply_with_a_line_separator_stays_one_row(tmp_path, separator):
    """Replies are written raw (ensure_ascii=False); JSON allows these characters inside a string."""
    path = write(tmp_path / "p.jsonl", [record("u1", f"first{separator}then \\boxed{{B}}"), record("u2", "C")])
    rows = read_predictions(path)
    assert [(r.uid, r.line, r.reply) for r in rows] == [("u1", 1, f"first{separator}then \\boxed{{B}}"), ("u2", 2, "C")]


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ('{"uid": "u9", "source": ', "", "not valid JSON"),
        ("[1, 2]", "", "a JSON list where an object was expected"),
        ({k: v for k, v in record("u9", "x").items() if k != "reply"}, "reply", "missing"),
        ({k: v for k, v in record("u9", "x").items() if k != "uid"}, "uid", "missing"),
        (record("", "x"), "uid", "non-empty string"),
        (record("u9", "x", source=3), "source", "non-empty string"),
        ({**record("u9", "x"), "options": ["Liver", "Kidney"]}, "options", "at least two options"),
        (
            {**record("u9", "x"), "options": {"A": "Liver", "b": "Kidney"}},
            "options", "'b' is not a single capital",
        ),
        ({**record("u9", "x"), "options": {"A": "Liver", "B": 3}}, "options", "option B must be text"),
        (record("u9", "x", answer="E"), "answer_idx", "'E' is not one of the options A, B, C, D"),
        ({**record("u9", "x"), "reply": None}, "reply", "must be a string"),
    ],
)
def test_read_predictions_errors_name_file_line_and_field(tmp_path, line, field, problem):
    path = write(tmp_path / "bad.jsonl", [record("u1", "C"), line])
    with pytest.raises(DataError) as caught:
        read_predictions(path)
    where = caught.value.problem
    assert where.file == str(path)
    assert where.row == "2"
    assert where.field == field
    assert problem in where.problem
    assert where.fix  # every error says how to fix it
    assert f"{path}, row 2" in str(caught.value)


def test_read_predictions_accepts_an_empty_option_text(tmp_path):
    # A real HLE item has an empty option (and letters out of order); it is still scorable.
    options = {"A": "Liver", "H": "", "P": "Kidney"}
    path = write(tmp_path / "p.jsonl", [{**record("u1", "\\boxed{P}", answer="P"), "options": options}])
    (row,) = read_predictions(path)
    assert row.options == options
    assert score_predictions([row], "strict")[0].correct


def test_read_predictions_rejects_a_repeated_uid(tmp_path):
    path = write(tmp_path / "dup.jsonl", [record("u1", "C"), record("u2", "C"), record("u1", "D")])
    with pytest.raises(DataError) as caught:
        read_predictions(path)
    assert (caught.value.problem.row, caught.value.problem.field) == ("3", "uid")
    assert "repeats line 1" in caught.value.problem.problem


def test_read_predictions_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_predictions(tmp_path / "absent.jsonl")


def test_score_predictions_in_both_modes():
    rows = [
        PredictionRow("u1", "MedQA", ORGANS, "B", "\\boxed{B}"),
        PredictionRow("u2", "MedQA", ORGANS, "B", "Based on the picture, this is vascular."),
        PredictionRow("u3", "GPQA", ORGANS, "C", "The answer is C."),
    ]
    strict = score_predictions(rows, "strict")
    assert [(r.uid, r.letter, r.rule, r.correct) for r in strict] == [
        ("u1", "B", "boxed_letter", True),
        ("u2", None, "no_answer", False),
        ("u3", "C", "answer_is", True),
    ]
    reference = score_predictions(rows, "reference")
    assert [(r.letter, r.rule) for r in reference] == [
        ("B", "boxed_letter"), ("C", "most_similar"), ("C", "answer_is")
    ]
    notebook = score_predictions(rows, "notebook")
    assert [(r.letter, r.rule, r.correct) for r in notebook][1] == ("B", "first_char", True)
    with pytest.raises(ValueError, match="reference, strict, notebook"):
        score_predictions(rows, "loose")


def test_report_and_command_result(tmp_path):
    path = write(
        tmp_path / "p.jsonl",
        [
            record("u1", "\\boxed{B}"),
            record("u2", "Based on the picture, this is vascular."),
            record("u3", "<|im_start|>think\nthe answer is A\n<|im_start|>answer\nAnswer: B"),
            record("u4", "The answer is C.", answer="C", source="GPQA"),
        ],
    )
    report = build_report(read_predictions(path), max_examples=5)
    strict, reference = report.modes["strict"], report.modes["reference"]
    assert (strict.micro.correct, strict.micro.no_answer) == (3, 1)
    assert (reference.micro.correct, reference.micro.no_answer) == (2, 0)
    assert [s.source for s in strict.sources] == ["MedQA", "GPQA"]
    assert report.disagreement.count == 2
    assert {(e.uid, e.reference_letter, e.strict_letter) for e in report.disagreement.examples} == {
        ("u2", "C", None),
        ("u3", "A", "B"),
    }

    result = score_command_result(path, "reference")
    assert result["primary_mode"] == "reference"
    assert result["file"] == str(path)
    assert result["items"] == 4
    assert set(result["modes"]) == {"reference", "strict"}
    assert result["modes"]["strict"]["micro"]["accuracy"] == 0.75
    assert result["modes"]["strict"]["no_answer_rate"] == 0.25
    assert result["disagreement"]["count"] == 2
    json.dumps(result)  # JSON-ready
    with pytest.raises(ValueError, match="reference, strict"):
        score_command_result(path, "both")
