"""Text views of a question for duplicate and contamination checks: normalised, option-order free.

    question_view("What is the DRUG of choice?")                  # "what is the drug of choice"
    item_view("Drug of choice?", {"A": "X", "B": "Y"})            # same for {"A": "Y", "B": "X"}
    item_segments("Drug of choice?", {"A": "Y", "B": "X"})        # ["drug of choice", "x", "y"]
    item_segments("Drug of choice?", {"A": "(a) Y", "B": "(b) X"})  # the same: labels are not content

Normalising undoes HTML escapes ("&amp;", "&nbsp;", "&#39;": scraped copies carry them), folds case
(Unicode casefold after NFKC), turns punctuation into spaces and collapses whitespace, so copies
that differ only in those respects compare equal. The item view appends the option texts sorted,
which makes the order of the options irrelevant: two copies of a question with shuffled options are
the same item. A copy that writes the option labels into the option texts ("(a) x", "a) x", "A. x",
"1. x") is the same item too: when the options start with labels that are the first letters or
numbers, one each in any order ("(b) x", "(a) y", "(c) z"), the labels are set aside. Requiring the
whole run keeps content that merely looks like a label intact: "E. coli" and "H. pylori" among other
options, or MMLU-Pro's compound options that each begin "(a) …, (b) …" (every one "(a)").
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping

_PUNCTUATION = re.compile(r"[^\w\s]|_")
# "(a) ", "a) ", "1) ", "A. ", "A: ", "10. ": a letter A-J or a number 1-10, then ")" or "." or ":".
_OPTION_LABEL = re.compile(r"^\s*\(?([A-Ja-j]|10|[1-9])[).:]\s+")


def normalize(text: str) -> str:
    """Escape-, case-, punctuation- and whitespace-insensitive form of `text`."""
    folded = unicodedata.normalize("NFKC", html.unescape(text)).casefold()
    return " ".join(_PUNCTUATION.sub(" ", folded).split())


def question_view(question: str) -> str:
    return normalize(question)


def _label_number(label: str) -> int:
    return int(label) - 1 if label.isdigit() else ord(label.casefold()) - ord("a")


def option_texts(options: Iterable[str]) -> list[str]:
    """The option texts without their labels when at least two options carry the first labels, one each."""
    texts = list(options)
    labels = [_OPTION_LABEL.match(text) for text in texts]
    if len(texts) < 2 or not all(labels):
        return texts
    if sorted(_label_number(label[1]) for label in labels) != list(range(len(texts))):
        return texts
    return [text[label.end():] for text, label in zip(texts, labels)]


def item_segments(question: str, options: Mapping[str, str]) -> list[str]:
    """The normalised question, then its normalised option texts (labels set aside) sorted."""
    return [normalize(question), *sorted(normalize(text) for text in option_texts(options.values()))]


def item_view(question: str, options: Mapping[str, str]) -> str:
    """The question and its options as one text that does not depend on the options' order."""
    return "\n".join(item_segments(question, options))
