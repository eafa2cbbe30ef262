"""Teacher-correct filter: keep the rows whose teacher answer is right, judged by the strict scorer.

    manifest = run_stage(TeacherCorrectFilter(VerifyConfig(), run_dir), rows, run_dir / "06_verify",
                         upstream=fingerprint)

The teacher's final content (`row["teacher"]["content"]`, not its reasoning) is scored both ways
and both verdicts are stored: `row["verify"] = {"strict": {"letter", "rule", "correct"},
"reference": {...}, "agree": bool}`. The strict scorer decides by default; it reports "no answer"
where the reference grader would guess (it read "Based on…" as B), so a guessed answer cannot
slip a wrong trace into the training set. `report()` counts where the two disagree, in each
direction, so the cost of the stricter choice is visible in the manifest.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from m1.curation.stage import Drop, Outcome, Row, RowStage
from m1.scoring import ScoredReply, score_reply


class VerifyConfig(BaseModel):
    """Which scorer decides whether the teacher was right."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["strict", "reference"] = "strict"


def _verdict(scored: ScoredReply) -> dict[str, Any]:
    return {"letter": scored.letter, "rule": scored.rule, "correct": scored.correct}


class TeacherCorrectFilter(RowStage):
    """Keeps rows whose teacher answer matches the answer letter."""

    name = "verify"

    def __init__(self, config: VerifyConfig, run_dir: Path):
        self.config = config
        self.counts: Counter[str] = Counter()

    def params(self) -> dict[str, Any]:
        return {"mode": self.config.mode}

    def report(self) -> dict[str, Any]:
        """Figures for rows judged in this process (a resumed run counts only what it judged)."""
        return {"judged": self.counts["judged"], "disagreements": self.counts["disagree"],
                "correct_by_reference_only": self.counts["reference_only"],
                "correct_by_strict_only": self.counts["strict_only"]}

    def process(self, row: Row) -> Outcome:
        teacher = row.get("teacher")
        if not isinstance(teacher, dict) or "content" not in teacher:
            raise ValueError(f"row {row['uid']} reaches {self.name} without teacher.content; run distill first")
        scored = {mode: score_reply(teacher["content"], row["options"], row["answer_idx"], mode)
                  for mode in ("strict", "reference")}
        agree = scored["strict"].correct == scored["reference"].correct
        self.counts["judged"] += 1
        if not agree:
            self.counts["disagree"] += 1
            self.counts["reference_only" if scored["reference"].correct else "strict_only"] += 1
        row = {**row, "verify": {"strict": _verdict(scored["strict"]), "reference": _verdict(scored["reference"]),
                                 "agree": agree}}
        decided = scored[self.config.mode]
        if decided.correct:
            return row
        if decided.letter is None:
            return Drop("teacher gave no answer", f"{self.config.mode} scorer: {decided.rule}")
        return Drop("teacher answered wrong", f"chose {decided.letter} ({decided.rule}); answer {row['answer_idx']}")
