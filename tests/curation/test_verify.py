"""The teacher-correct filter: the strict scorer decides on the teacher's final content, both
verdicts are stored, and disagreements with the reference grader are counted."""

from __future__ import annotations

import pytest

from m1.curation.stage import dropped_rows, kept_rows, run_stage
from m1.curation.verify import TeacherCorrectFilter, VerifyConfig

from .servers import row_from

OPTIONS = {"A": "Insulin", "B": "Glucagon", "C": "Somatostatin", "D": "Gastrin"}


def taught(uid: str, content: str, reasoning: str = "The beta cells secrete it. \\boxed{C}") -> dict:
    row = row_from(uid, "test", "Which hormone lowers blood glucose?", OPTIONS, "A")
    return row | {"teacher": {"reasoning": reasoning, "content": content, "finish_reason": "stop"}}


ROWS = [
    taught("right", "The answer is \\boxed{A}"),
    taught("wrong", "\\boxed{C}"),
    # The reference grader reads the first letter of an unboxed reply: "Based on…" becomes B.
    taught("guess", "Based on the physiology, the hormone made by beta cells."),
    taught("text", "Final answer: Insulin"),
]


def test_strict_decides_on_the_final_content_and_both_verdicts_are_kept(tmp_path):
    stage = TeacherCorrectFilter(VerifyConfig(), tmp_path)
    manifest = run_stage(stage, ROWS, tmp_path / "verify", upstream="u")

    kept = {row["uid"]: row for row in kept_rows(tmp_path / "verify")}
    assert set(kept) == {"right", "text"}  # the reasoning's \boxed{C} never counts
    assert kept["right"]["verify"] == {"strict": {"letter": "A", "rule": kept["right"]["verify"]["strict"]["rule"],
                                                  "correct": True},
                                       "reference": kept["right"]["verify"]["reference"], "agree": True}
    assert kept["right"]["verify"]["reference"]["correct"]
    dropped = {row["uid"]: row for row in dropped_rows(tmp_path / "verify")}
    assert dropped["wrong"]["reason"] == "teacher answered wrong" and "chose C" in dropped["wrong"]["detail"]
    assert dropped["guess"]["reason"] == "teacher gave no answer"
    assert manifest["dropped"] == {"teacher answered wrong": 1, "teacher gave no answer": 1}
    assert manifest["extra"]["judged"] == 4


def test_disagreements_with_the_reference_grader_are_counted(tmp_path):
    # The reference grader takes the last standalone letter; the strict one wants it stated as an answer.
    guessed_right = taught("lucky", "It is A")
    stage = TeacherCorrectFilter(VerifyConfig(), tmp_path)
    manifest = run_stage(stage, [guessed_right, *ROWS], tmp_path / "verify", upstream="u")
    report = manifest["extra"]
    assert report["disagreements"] == report["correct_by_reference_only"] + report["correct_by_strict_only"] >= 1
    reference = run_stage(TeacherCorrectFilter(VerifyConfig(mode="reference"), tmp_path), [guessed_right, *ROWS],
                          tmp_path / "verify-reference", upstream="u")
    assert reference["rows_out"] > manifest["rows_out"]


def test_a_row_without_a_teacher_reply_is_a_wiring_error(tmp_path):
    row = row_from("bare", "test", "q?", OPTIONS, "A")
    with pytest.raises(ValueError, match="run distill first"):
        TeacherCorrectFilter(VerifyConfig(), tmp_path).process(row)
