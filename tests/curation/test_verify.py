"""The teacher-correct filter: the strict scorer decides on the teacher's final content, every
grader's verdict is stored, and the report counts every row in the stage's files."""

from __future__ import annotations

import pytest

from m1.curation.stage import KEPT_FILE, MANIFEST_FILE, dropped_rows, kept_rows, run_stage
from m1.curation.verify import TeacherCorrectFilter, VerifyConfig

from .servers import row_from

OPTIONS = {"A": "Insulin", "B": "Glucagon", "C": "Somatostatin", "D": "Gastrin"}


def taught(uid: str, content: str, reasoning: str = "The beta cells secrete it. \\boxed{C}") -> dict:
    row = row_from(uid, "test", "Which hormone lowers blood glucose?", OPTIONS, "A")
    return row | {"teacher": {"reasoning": reasoning, "content": content, "finish_reason": "stop"}}


ROWS = [
    taught("right", "The answer is \\boxed{A}"),
    taught("wrong", "\\boxed{C}"),
    # The curation notebooks' grader reads the first letter of an unboxed reply: "Based on…" is B.
    taught("guess", "Based on the physiology, the hormone made by beta cells."),
    taught("text", "Final answer: Insulin"),
    taught("based", "Based on the physiology, beta cells.", reasoning="Beta cells."),
]
ROWS[-1]["answer_idx"] = "B"  # right by the notebooks' first character, wrong by every other grader


def test_strict_decides_on_the_final_content_and_every_verdict_is_kept(tmp_path):
    stage = TeacherCorrectFilter(VerifyConfig(), tmp_path)
    manifest = run_stage(stage, ROWS, tmp_path / "verify", upstream="u")

    kept = {row["uid"]: row for row in kept_rows(tmp_path / "verify")}
    assert set(kept) == {"right", "text"}  # the reasoning's \boxed{C} never counts
    verdict = kept["right"]["verify"]
    assert set(verdict["graders"]) == {"strict", "reference", "notebook"}
    assert verdict["graders"]["strict"] == {"letter": "A", "rule": "boxed_letter", "correct": True}
    assert verdict["decided_by"] == "strict" and verdict["agree"] is True
    dropped = {row["uid"]: row for row in dropped_rows(tmp_path / "verify")}
    assert dropped["wrong"]["reason"] == "teacher answered wrong" and "chose C" in dropped["wrong"]["detail"]
    assert dropped["guess"]["reason"] == "teacher gave no answer"
    # Dropped rows keep their verdicts, so a reader (and the report) sees every grader's view.
    assert dropped["based"]["row"]["verify"]["graders"]["notebook"] == {"letter": "B", "rule": "first_char",
                                                                        "correct": True}
    assert manifest["dropped"] == {"teacher gave no answer": 2, "teacher answered wrong": 1}
    assert manifest["extra"] == {"judged": 5, "correct_by": {"reference": 2, "strict": 2, "notebook": 2},
                                 "disagreements": 2}


def test_the_notebook_grader_reproduces_the_papers_filter(tmp_path):
    manifest = run_stage(TeacherCorrectFilter(VerifyConfig(grader="notebook"), tmp_path), ROWS,
                         tmp_path / "verify", upstream="u")
    kept = {row["uid"] for row in kept_rows(tmp_path / "verify")}
    # "Based on…" passes for answer B, and "Final answer: Insulin" fails (its first character is F).
    assert kept == {"right", "based"}
    assert manifest["rows_out"] == manifest["extra"]["correct_by"]["notebook"] == 2


def test_report_after_a_resume_counts_every_row(tmp_path):
    stage_dir = tmp_path / "verify"
    whole = run_stage(TeacherCorrectFilter(VerifyConfig(), tmp_path), ROWS, stage_dir, upstream="u")
    # As after a kill during the stage: the files hold one kept and one dropped row, no manifest.
    (stage_dir / MANIFEST_FILE).unlink()
    for name in (KEPT_FILE, "dropped.jsonl"):
        (stage_dir / name).write_text((stage_dir / name).read_text().splitlines(keepends=True)[0])
    resumed = run_stage(TeacherCorrectFilter(VerifyConfig(), tmp_path), ROWS, stage_dir, upstream="u")
    assert resumed["extra"] == whole["extra"] and resumed["rows_out"] == whole["rows_out"]


def test_disagreements_between_graders_are_counted(tmp_path):
    # The reference grader takes the last standalone letter; the strict one wants it stated as an answer.
    guessed_right = taught("lucky", "It is A")
    stage = TeacherCorrectFilter(VerifyConfig(), tmp_path)
    manifest = run_stage(stage, [guessed_right, *ROWS], tmp_path / "verify", upstream="u")
    report = manifest["extra"]
    assert report["disagreements"] == 3
    assert report["correct_by"]["reference"] > report["correct_by"]["strict"]
    reference = run_stage(TeacherCorrectFilter(VerifyConfig(grader="reference"), tmp_path), [guessed_right, *ROWS],
                          tmp_path / "verify-reference", upstream="u")
    assert reference["rows_out"] > manifest["rows_out"]


def test_a_row_without_a_teacher_reply_is_a_wiring_error(tmp_path):
    row = row_from("bare", "test", "q?", OPTIONS, "A")
    with pytest.raises(ValueError, match="run distill first"):
        TeacherCorrectFilter(VerifyConfig(), tmp_path).process(row)
