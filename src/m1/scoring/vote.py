"""The vote over several samples' answers: majority or weighted, one rule for evaluation and the server.

    decide("majority", ["B", "C", "B", None])                      # Decision("majority", "B", 0.5, {"B": 2, "C": 1})
    decide("weighted", ["B", "C"], [0.4, 0.9])                     # Decision("weighted", "C", 0.69…, {"B": 0.4, "C": 0.9})
    normalise_answer("  The  Liver. ")                             # "the liver"

Rules (SPEC §8; `m1.evaluation.votes` and `m1 serve`'s `vote` both use them):
- majority: the most frequent answer; a tie goes to the tied answer voted first (in sample order),
  so the answer never depends on dict order. "No answer" (None) never wins unless every vote is one.
- weighted: each answer scores the sum of its votes' weights (the answer letter's probability); a
  vote without a weight weighs 0. Ties as for majority; when every weight is 0 (nothing was read),
  it is the majority vote.
- share: the winner's part of the vote: its votes over all samples (majority), its weight over all
  weight (weighted); 0 when no sample gave an answer.
- free-form answers are compared after `normalise_answer`: stripped, case-folded, whitespace
  collapsed, trailing punctuation removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

VoteMethod = Literal["majority", "weighted"]
METHODS: tuple[VoteMethod, ...] = ("majority", "weighted")
TRAILING_PUNCTUATION = ".,;:!?。"


@dataclass(frozen=True)
class Decision:
    """The voted answer (None: no sample answered), its share, and each answer's count or weight,
    in the order the answers were first voted for."""

    method: VoteMethod
    answer: str | None
    share: float
    votes: dict[str, float]


def normalise_answer(text: str | None) -> str | None:
    """A free-form answer's compare-form (None for an empty one)."""
    if text is None:
        return None
    form = " ".join(text.split()).casefold().rstrip(TRAILING_PUNCTUATION).strip()
    return form or None


def counts(answers: Sequence[str | None]) -> dict[str, int]:
    found: dict[str, int] = {}
    for answer in answers:
        if answer is not None:
            found[answer] = found.get(answer, 0) + 1
    return found


def majority(answers: Sequence[str | None]) -> str | None:
    found = counts(answers)
    # max keeps the first of equals, and the dict keeps first-vote order: the earliest tied answer wins.
    return max(found, key=found.__getitem__) if found else None


def weights(answers: Sequence[str | None], confidences: Sequence[float | None]) -> dict[str, float]:
    if len(answers) != len(confidences):
        raise ValueError(f"{len(answers)} answers and {len(confidences)} weights")
    found: dict[str, float] = {}
    for answer, confidence in zip(answers, confidences):
        if answer is not None:
            found[answer] = found.get(answer, 0.0) + (confidence or 0.0)
    return found


def weighted(answers: Sequence[str | None], confidences: Sequence[float | None]) -> str | None:
    found = weights(answers, confidences)
    if not any(found.values()):
        return majority(answers)
    return max(found, key=found.__getitem__)


def decide(method: VoteMethod, answers: Sequence[str | None],
           confidences: Sequence[float | None] | None = None) -> Decision:
    """The vote of `method` over `answers` (in sample order), with its share and tally."""
    if method == "majority":
        tally: dict[str, float] = dict(counts(answers))
        answer = majority(answers)
        share = tally[answer] / len(answers) if answer is not None else 0.0
        return Decision(method, answer, share, tally)
    if method != "weighted":
        raise ValueError(f"unknown vote {method!r}; choose one of {', '.join(METHODS)}")
    if confidences is None:
        raise ValueError("a weighted vote needs a weight per answer")
    tally = weights(answers, confidences)
    total = sum(tally.values())
    if not total:  # nothing was read: the majority decides, and says so in its share
        answer = majority(answers)
        return Decision(method, answer, counts(answers)[answer] / len(answers) if answer else 0.0, tally)
    answer = weighted(answers, confidences)
    return Decision(method, answer, tally[answer] / total if answer is not None else 0.0, tally)
