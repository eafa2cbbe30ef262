"""Scoring: which option a reply chose (two named cascades, each answer tagged with the rule that
decided it), accuracy with confidence intervals, and predictions files.

    from m1.scoring import extract_answer, score_reply, read_predictions, build_report, render_table
    extract_answer(reply, {"A": "Liver", "B": "Kidney", "C": "Heart"})  # Extraction("C", "boxed_letter")

Modes: `reference` reproduces the paper's evaluation grader (for comparison with its numbers),
`strict` never guesses and reports "no answer" instead. `GRADERS` adds `notebook`, the curation
notebooks' gold-dependent grader with its first-character defect, for reproducing the paper's
filter funnel. See `m1.scoring.extract` for each and `RULES`.
"""

from m1.scoring.extract import (
    GRADERS,
    MODES,
    NO_ANSWER_RULES,
    RULES,
    Extraction,
    ScoredReply,
    extract_answer,
    score_all,
    score_reply,
)
from m1.scoring.metrics import (
    Accuracy,
    Disagreement,
    ModeDifference,
    ModeMetrics,
    ScoredRow,
    SourceMetrics,
    disagreement,
    mode_metrics,
    render_table,
    wilson_interval,
)
from m1.scoring.predictions import (
    PredictionRow,
    ScoreReport,
    build_report,
    prediction_from_record,
    read_predictions,
    score_command_result,
    score_file,
    score_predictions,
)

__all__ = [
    "GRADERS",
    "MODES",
    "NO_ANSWER_RULES",
    "RULES",
    "Accuracy",
    "Disagreement",
    "Extraction",
    "ModeDifference",
    "ModeMetrics",
    "PredictionRow",
    "ScoreReport",
    "ScoredReply",
    "ScoredRow",
    "SourceMetrics",
    "build_report",
    "disagreement",
    "extract_answer",
    "mode_metrics",
    "prediction_from_record",
    "read_predictions",
    "render_table",
    "score_all",
    "score_command_result",
    "score_file",
    "score_predictions",
    "score_reply",
    "wilson_interval",
]
