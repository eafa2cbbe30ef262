"""Normalised views and the similarity index that dedup and decontamination share."""

from __future__ import annotations

from m1.curation.similarity import NearDuplicateSettings, SimilarityIndex
from m1.curation.text import item_view, normalize, question_view

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
