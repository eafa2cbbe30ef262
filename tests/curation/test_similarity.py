"""Normalised views and the similarity index that dedup and decontamination share."""

from __future__ import annotations

import html
import re

import pytest

from m1.curation.similarity import NearDuplicateSettings, SimilarityIndex
from m1.curation.text import item_segments, item_view, normalize, option_texts, question_view

STEM = ("A 45-year-old man presents with crushing chest pain radiating to the left arm for two hours. "
        "ECG shows ST elevation in leads II, III and aVF. Which artery is most likely occluded?")
OPTIONS = {"A": "Left anterior descending", "B": "Right coronary artery", "C": "Left circumflex", "D": "Left main"}


def test_normalize_ignores_case_spacing_and_punctuation() -> None:
    assert normalize("  Drug of CHOICE:\n for   malaria?? ") == "drug of choice for malaria"
    assert normalize("ﬁbrosis — 2-year-old") == normalize("FIBROSIS 2 year old")  # NFKC ligature, dashes
    assert question_view("Which is TRUE?") == "which is true"


def test_item_view_does_not_depend_on_option_order_or_letters() -> None:
    shuffled = {"A": OPTIONS["C"], "B": OPTIONS["A"], "C": OPTIONS["D"], "D": OPTIONS["B"]}
    assert item_view(STEM, OPTIONS) == item_view(STEM.upper(), shuffled)
    assert item_view(STEM, OPTIONS) != item_view(STEM, OPTIONS | {"D": "Posterior descending"})


def test_html_escapes_are_undone_before_normalising() -> None:
    escaped = html.escape(STEM, quote=True).replace(" ", "&nbsp;", 3).replace("'", "&#39;")
    assert normalize(escaped) == normalize(STEM)
    assert item_view(escaped, {k: html.escape(v) for k, v in OPTIONS.items()}) == item_view(STEM, OPTIONS)
    assert normalize("Ca&#178;&#8314; &amp; Mg") == normalize("Ca²⁺ & Mg")


LABELS = {"(a)": lambda i: f"({'abcdefghij'[i]}) ", "a)": lambda i: f"{'abcdefghij'[i]}) ",
          "A.": lambda i: f"{'ABCDEFGHIJ'[i]}. ", "A:": lambda i: f"{'ABCDEFGHIJ'[i]}: ", "1.": lambda i: f"{i + 1}. "}


@pytest.mark.parametrize("style", list(LABELS))
def test_option_labels_written_into_the_options_are_set_aside(style: str) -> None:
    texts = list(OPTIONS.values())
    labelled = {k: LABELS[style](i) + text for i, (k, text) in enumerate(OPTIONS.items())}
    assert item_view(STEM, labelled) == item_view(STEM, OPTIONS)
    # Labelled, then shuffled: the labels are still the first ones, one each.
    shuffled = dict(zip("ABCD", [labelled["C"], labelled["A"], labelled["D"], labelled["B"]]))
    assert item_segments(STEM, shuffled) == item_segments(STEM, OPTIONS)
    assert option_texts([LABELS[style](0) + "\t" + texts[0], LABELS[style](1) + texts[1]]) == texts[:2]
    ten = [f"{number}. dose {number * 5} mg" for number in range(1, 11)]  # MMLU-Pro has ten options
    assert option_texts(ten) == [f"dose {number * 5} mg" for number in range(1, 11)]


def test_content_that_looks_like_a_label_is_kept() -> None:
    bacteria = ["E. coli", "H. pylori", "B. fragilis", "C. difficile"]  # letters, but not the run A, B, C, D
    assert option_texts(bacteria) == bacteria
    assert option_texts(["A. fib", "Flutter", "SVT", "VT"]) == ["A. fib", "Flutter", "SVT", "VT"]
    compound = ["(a) 1/4, (b) Seven", "(a) 3/16, (b) Six", "(a) 1/16, (b) Four"]  # every option "(a)"
    assert option_texts(compound) == compound
    assert option_texts(["(a) one"]) == ["(a) one"]  # a single option has no run of labels
    assert option_texts(["A. x", "B. y", "D. z"]) == ["A. x", "B. y", "D. z"]  # a label is missing


def test_real_suite_options_keep_their_text_unless_all_are_labelled(real_suite: dict) -> None:
    looked_like_labels = stripped = 0
    for items in real_suite.values():
        for item in items:
            texts = list(item["options"].values())
            kept = option_texts(texts)
            looked_like_labels += any(re.match(r"\(?[A-Ja-j1-9][).:]\s", text) for text in texts)
            if kept != texts:
                stripped += 1
                # Only a full run of labels goes, and nothing after it.
                assert [text.endswith(rest) for text, rest in zip(texts, kept)] == [True] * len(texts)
                assert all(len(text) - len(rest) <= 5 for text, rest in zip(texts, kept))
    assert looked_like_labels > stripped > 0  # "E. coli" and such are far more common than labelled runs


def test_bulk_signatures_equal_datasketch_update_batch() -> None:
    for size in (1, 2, 3):
        index = SimilarityIndex(NearDuplicateSettings(shingle_words=size))
        views = [item_view(STEM, OPTIONS), "", "short", "two words", question_view(STEM)] * 2
        hashes, counts = index.shingle_hashes(views)
        start = 0
        for view, signature, count in zip(views, index.signatures(views), counts):
            own = [int(value) for value in hashes[start:start + count]]
            start += count
            if not view:
                assert signature is None and count == 0
                continue
            assert count == max(len(view.split()) - size + 1, 1)
            expected = index._template.copy()
            expected.update_batch(own)  # datasketch's own MinHash over the same shingle hashes
            assert (expected.hashvalues == signature.hashvalues).all()


def test_index_finds_exact_and_near_twins_and_confirms_candidates() -> None:
    index = SimilarityIndex(NearDuplicateSettings(threshold=0.95))
    index.add("eval/1", item_view(STEM, OPTIONS))
    index.add("eval/2", item_view("What is the first-line treatment of uncomplicated hypertension in adults?",
                                  {"A": "Thiazide", "B": "Beta blocker"}))

    exact = index.find(item_view(STEM.replace("  ", " ").lower(), dict(reversed(list(OPTIONS.items())))))
    assert exact is not None and exact.key == "eval/1" and exact.exact

    edited = index.find(item_view(STEM.replace("crushing", "severe"), OPTIONS))
    assert edited is not None and edited.key == "eval/1" and not edited.exact and 0.95 <= edited.similarity < 1

    # Shares most shingles but differs in what is asked: LSH may propose it, the ratio check rejects it.
    other = STEM.replace("Which artery is most likely occluded?", "What is the best next step in management?")
    assert index.find(item_view(other, OPTIONS)) is None
    assert index.find("") is None
