"""Which published grader each of m1's paper-facing graders reproduces, pinned on a table of replies.

- `reference` is the paper's evaluation grader (UCSC-VLAA/m1 `src/eval/score.py` with
  `extract_format.py`): extract the last box, compare it with the answer, else HuatuoGPT-o1's
  letter matcher on what was extracted.
- `notebook` is the grader of the paper's curation notebooks (`filtering_qwen_correct.ipynb`,
  `filtering_r1_wrong.ipynb`): the same extraction, then the answer text, else the first character.

Each expected verdict below was worked out by hand from the published code, one row per behaviour
that tells the graders apart; neither grader may drift towards the other.
"""

from __future__ import annotations

import pytest

from m1.scoring import GRADERS, score_reply

ORGANS = {"A": "Liver", "B": "Kidney", "C": "Heart", "D": "Lung"}
VITAMINS = {"A": "Vitamin B", "B": "Vitamin C"}

# (id, reply, options, gold, evaluation grader says correct, curation notebooks say correct)
TABLE = [
    ("box_letter", "\\boxed{B}", ORGANS, "B", True, True),
    ("box_text", "so \\boxed{Kidney}", ORGANS, "B", True, True),
    ("box_text_trailing_space", "\\boxed{kidney }", ORGANS, "B", True, True),  # matcher / strip
    ("box_text_wrapper", "\\boxed{\\text{B}}", ORGANS, "B", True, True),
    ("box_after_equals", "\\boxed{x = B}", ORGANS, "B", True, True),
    ("box_other_option", "\\boxed{Heart}", ORGANS, "B", False, False),
    ("box_wins_over_prose", "The answer is B.\n\\boxed{C}", ORGANS, "B", False, False),
    # The notebooks' defect: an extracted answer that merely starts with the letter.
    ("unboxed_based_on", "Based on the clinical picture, this is most consistent with a vascular cause.",
     ORGANS, "B", False, True),
    ("box_starting_with_letter", "\\boxed{Bleeding from the liver}", ORGANS, "B", False, True),
    ("answer_colon_reads_as_A", "Answer: Kidney", ORGANS, "A", False, True),
    ("answer_colon_text", "Answer: Kidney", ORGANS, "B", True, False),
    ("letter_dot_text", "A. Liver", ORGANS, "A", True, True),
    ("lowercase_letter", "b", ORGANS, "B", True, True),
    ("leading_space", " B", ORGANS, "B", True, False),
    ("fbox", "\\fbox{B}", ORGANS, "B", True, False),
    ("huatuo_final_response", "## Final Response\n\nThe answer is C", ORGANS, "C", True, False),
    # The evaluation grader's own oddities, reproduced: an empty reply is a guess at the last
    # option, and a box naming one option's text can still match another's letter.
    ("empty_reply_last_option", "", ORGANS, "D", True, False),
    ("empty_reply_other_option", "", ORGANS, "A", False, False),
    ("text_of_A_letter_of_B", "\\boxed{Vitamin B}", VITAMINS, "B", True, False),
    ("text_of_A_is_A", "\\boxed{Vitamin B}", VITAMINS, "A", True, True),
]


@pytest.mark.parametrize(("reply", "options", "gold", "evaluation", "notebooks"),
                         [pytest.param(*row[1:], id=row[0]) for row in TABLE])
def test_each_grader_reproduces_its_published_grader(reply, options, gold, evaluation, notebooks):
    assert score_reply(reply, options, gold, "reference").correct is evaluation
    assert score_reply(reply, options, gold, "notebook").correct is notebooks


def test_notebook_verdicts_name_the_first_character_rule():
    based_on = score_reply("Based on the findings, renal.", ORGANS, "B", "notebook")
    assert (based_on.letter, based_on.rule, based_on.correct) == ("B", "first_char", True)
    wrong = score_reply("Clearly cardiac.", ORGANS, "B", "notebook")
    assert (wrong.letter, wrong.rule, wrong.correct) == ("C", "first_char", False)
    none = score_reply("The picture is renal.", ORGANS, "B", "notebook")
    assert (none.letter, none.rule, none.correct) == (None, "no_answer", False)


def test_graders_are_listed_once_and_unknown_names_are_refused():
    assert GRADERS == ("reference", "strict", "notebook")
    with pytest.raises(ValueError, match="reference, strict, notebook"):
        score_reply("B", ORGANS, "B", "paper_quirks")
