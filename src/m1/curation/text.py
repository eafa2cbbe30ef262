"""Text views of a question for duplicate and contamination checks: normalised, option-order free.

    question_view("What is the DRUG of choice?")                  # "what is the drug of choice"
    item_view("Drug of choice?", {"A": "X", "B": "Y"})            # same for {"A": "Y", "B": "X"}
    item_segments("Drug of choice?", {"A": "Y", "B": "X"})        # ["drug of choice", "x", "y"]

Normalising folds case (Unicode casefold after NFKC), turns punctuation into spaces and collapses
whitespace, so copies that differ only in those respects compare equal. The item view appends the
option texts sorted, which makes the order of the options irrelevant: two copies of a question with
shuffled options are the same item.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

_PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalize(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form of `text`."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCTUATION.sub(" ", folded).split())


def question_view(question: str) -> str:
    return normalize(question)


def item_segments(question: str, options: Mapping[str, str]) -> list[str]:
    """The normalised question, then its normalised option texts sorted."""
    return [normalize(question), *sorted(normalize(text) for text in options.values())]


def item_view(question: str, options: Mapping[str, str]) -> str:
    """The question and its options as one text that does not depend on the options' order."""
    return "\n".join(item_segments(question, options))

