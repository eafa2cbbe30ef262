"""Teacher-correct filter: keep the rows whose teacher answer is right, judged by the strict scorer.

    manifest = run_stage(TeacherCorrectFilter(VerifyConfig(), run_dir), rows, run_dir / "06_verify",
                         upstream=fingerprint)

The teacher's final content (`row["teacher"]["content"]`, not its reasoning) is judged by every
grader of `m1.scoring.GRADERS` and every verdict is stored, on kept and dropped rows alike:
`row["verify"] = {"graders": {grader: {"letter", "rule", "correct"}}, "decided_by": grader,
"agree": bool}`. `grader` picks the one that decides:
- `strict` (default) reports "no answer" where the others would guess, so a guessed answer cannot
  slip a wrong trace into the training set;
- `reference` is the paper's evaluation grader;
- `notebook` is the grader the paper's curation notebooks used for this filter, first-character
  defect included ("Based on…" counts as B): set it to reproduce the paper's funnel.
`report()` counts, over every row of the stage's files, how many each grader calls correct and
where they disagree, so the cost of the stricter choice is visible in the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from m1.curation.stage import Drop, Outcome, Row, RowStage, annotations
from m1.scoring import GRADERS, score_all


class VerifyConfig(BaseModel):
    """Which grader decides whether the teacher was right."""

    model_config = ConfigDict(extra="forbid")

    grader: Literal[GRADERS] = Field("strict", description="which grader of m1.scoring.GRADERS decides")  # type: ignore[valid-type]


class TeacherCorrectFilter(RowStage):
    """Keeps rows whose teacher answer matches the answer letter."""

    name = "verify"
    version = "2"  # every grader's verdict stored, dropped rows annotated

    def __init__(self, config: VerifyConfig, run_dir: Path):
        self.config = config

    def params(self) -> dict[str, Any]:
        return {"grader": self.config.grader}

    def report(self, kept: list[Row], dropped: list[Row]) -> dict[str, Any]:
        verdicts = annotations(kept, dropped, "verify")
        return {"judged": len(verdicts),
                "correct_by": {grader: sum(v["graders"][grader]["correct"] for v in verdicts) for grader in GRADERS},
                "disagreements": sum(not v["agree"] for v in verdicts)}

    def process(self, row: Row) -> Outcome:
        teacher = row.get("teacher")
        if not isinstance(teacher, dict) or "content" not in teacher:
            raise ValueError(f"row {row['uid']} reaches {self.name} without teacher.content; run distill first")
        scored = score_all(teacher["content"], row["options"], row["answer_idx"])
        row = {**row, "verify": {"graders": {grader: verdict.to_dict() for grader, verdict in scored.items()},
                                 "decided_by": self.config.grader,
                                 "agree": len({verdict.correct for verdict in scored.values()}) == 1}}
        decided = scored[self.config.grader]
        if decided.correct:
            return row
        if decided.letter is None:
            return Drop("teacher gave no answer", f"{self.config.grader} grader: {decided.rule}", row)
        return Drop("teacher answered wrong", f"chose {decided.letter} ({decided.rule}); answer {row['answer_idx']}",
                    row)
