"""Decontamination against real evaluation items, in both views, with every hit named."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from rapidfuzz import fuzz

from m1.curation.decontaminate import DecontamConfig, Decontaminate
from m1.curation.stage import Drop, dropped_rows, run_stage
from m1.curation.text import question_view
from m1.data.errors import DataError
from m1.data.suite import load_suite

from .conftest import make_row


@pytest.fixture(scope="module")
def suite_items(small_suite: Path) -> dict:
    return load_suite(small_suite)


def stage_for(suite: Path, **settings) -> Decontaminate:
    return Decontaminate(DecontamConfig(suite=str(suite), **settings))


def test_copies_of_real_eval_items_are_caught_in_both_views(small_suite: Path, suite_items: dict,
                                                            tmp_path: Path) -> None:
    medqa = suite_items["MedQA_USLME_test"][0]
    reordered = dict(zip("ABCD", reversed(list(medqa.options.values()))))
    rows = [
        # A training copy with the options shuffled and the text re-cased: the question+options view.
        make_row(medqa.question.upper(), reordered, "A", uid="copied"),
        # The same evaluation question asked with other options: only the question view sees it.
        make_row(medqa.question, {"A": "Call the hospital lawyer", "B": "Do nothing"}, uid="same-question"),
        # A light edit of another item: a near match with its similarity.
        make_row(suite_items["MedQA_USLME_test"][1].question.replace("most likely", "probably"),
                 suite_items["MedQA_USLME_test"][1].options, uid="edited"),
        make_row("Which vitamin deficiency causes scurvy in sailors on long voyages without fresh fruit?",
                 {"A": "Vitamin C", "B": "Vitamin D"}, uid="clean"),
    ]
    stage = stage_for(small_suite)
    manifest = run_stage(stage, rows, tmp_path / "03_decontaminate", upstream="test")
    assert manifest["rows_out"] == 1 and manifest["dropped"] == {"contaminated: MedQA_USLME_test": 3}
    details = {row["uid"]: row["detail"] for row in dropped_rows(tmp_path / "03_decontaminate")}
    key = f"MedQA_USLME_test/{medqa.uid}"
    assert details["copied"] == f"{key} (question+options view, exact); {key} (question view, exact)"
    assert details["same-question"] == f"{key} (question view, exact)"
    edited_key = f"MedQA_USLME_test/{suite_items['MedQA_USLME_test'][1].uid}"
    assert details["edited"].startswith(f"{edited_key} (question+options view, similarity 0.9")
    assert manifest["extra"]["matches_by_view"] == {"question+options": 2, "question": 3}
    assert manifest["extra"]["contained_by_view"] == {}  # containment only searches rows nothing matched


def test_short_questions_are_compared_with_their_options_only(small_suite: Path, suite_items: dict) -> None:
    short = next(item for item in suite_items["MedMCQA_validation"] if len(item.question.split()) < 5)
    rows = [make_row(short.question, {"A": "something else", "B": "entirely"}, uid="short-other-options"),
            make_row(short.question, short.options, short.answer_idx, uid="short-same-options")]
    outcomes = stage_for(small_suite).process_batch(rows)
    assert not isinstance(outcomes[0], Drop)
    assert outcomes[1].reason == "contaminated: MedMCQA_validation"
    assert "(question+options view, exact)" in outcomes[1].detail


def test_excluded_and_unknown_sources(small_suite: Path, suite_items: dict) -> None:
    medqa = suite_items["MedQA_USLME_test"][0]
    row = make_row(medqa.question, medqa.options, medqa.answer_idx)
    assert stage_for(small_suite, exclude_eval_sources=["MedQA_USLME_test"]).process_batch([row]) == [row]
    with pytest.raises(DataError, match="no evaluation source named Lancet"):
        stage_for(small_suite, eval_sources=["Lancet"]).process_batch([row])


def test_reference_rule_compares_raw_text(small_suite: Path, suite_items: dict) -> None:
    medqa = suite_items["MedQA_USLME_test"][0]
    reordered = dict(zip("ABCD", reversed(list(medqa.options.values()))))
    rows = [make_row(medqa.question, medqa.options, medqa.answer_idx, uid="verbatim"),
            make_row(medqa.question.upper(), reordered, "A", uid="recased-reordered")]
    verbatim, recased = stage_for(small_suite, method="reference", containment=None).process_batch(rows)
    assert verbatim.reason == "contaminated: MedQA_USLME_test" and "exact" in verbatim.detail
    assert not isinstance(recased, Drop)  # what the minhash method catches (first test) the raw rule misses


# --------------------------------------------------------------------------- leaks that grow

Perturb = Callable[[str, dict[str, str]], tuple[str, dict[str, str]]]


def _typo(question: str) -> str:
    """Two letters swapped inside the longest word (the slip of a hurried copy)."""
    word = max(re.findall(r"[A-Za-z]{4,}", question), key=len)
    return question.replace(word, word[0] + word[2] + word[1] + word[3:], 1)


def _reversed(options: dict[str, str]) -> dict[str, str]:
    return dict(zip("ABCDEFGHIJ", reversed(list(options.values()))))


def _labelled(options: dict[str, str], label: Callable[[int], str]) -> dict[str, str]:
    return {letter: label(i) + text for i, (letter, text) in enumerate(options.items())}


def _written_in(question: str, options: dict[str, str]) -> str:
    """The question with its options written under it, as a prompt shows them."""
    return question + "\n" + "\n".join(f"{letter}. {text}" for letter, text in options.items())


def _escaped(text: str) -> str:
    """HTML-escaped as a scraped page carries it: entities for quotes and ampersands, &nbsp; for spaces."""
    return html.escape(text, quote=True).replace("&#x27;", "&#39;").replace(" ", "&nbsp;", 3)


def _row(question: str, options: dict[str, str], **fields) -> dict:
    """A row of `make_row`, which may have no options (an item asked with its options in the question)."""
    return {**make_row(question, options or {"A": ""}, **fields), "options": options}


PERTURBATIONS: dict[str, Perturb] = {
    "re-spaced": lambda q, o: ("  " + q.replace(" ", "  \n ") + " \n", o),
    "re-cased": lambda q, o: (q.upper(), {letter: text.lower() for letter, text in o.items()}),
    "typo": lambda q, o: (_typo(q), o),
    "shuffled options": lambda q, o: (q, _reversed(o)),
    "prefix": lambda q, o: ("Question 12: " + q, o),
    "instruction": lambda q, o: (q + "\nChoose the best answer.", o),
    "all of these": lambda q, o: ("Q7. " + _typo(q).upper().replace(" ", "  ") + "\nAnswer with the letter of the "
                                  "correct option.", _reversed({k: v.lower() for k, v in o.items()})),
    "labelled options (a)": lambda q, o: (q, _labelled(o, lambda i: f"({'abcdefghij'[i]}) ")),
    "labelled options A.": lambda q, o: (q, _labelled(o, lambda i: f"{'ABCDEFGHIJ'[i]}. ")),
    "labelled options 1.": lambda q, o: (q, _labelled(o, lambda i: f"{i + 1}. ")),
    "options in the question": lambda q, o: (_written_in(q, o), {}),
    "options in the question, letters": lambda q, o: (_written_in(q, o), {letter: letter for letter in o}),
    "options in the question, 'Option A'": lambda q, o: (_written_in(q, o), {k: f"Option {k}" for k in o}),
    "html escaped": lambda q, o: (_escaped(q) + "<br>", {k: _escaped(v) for k, v in o.items()}),
    "instruction, labels, shuffled, typo": lambda q, o: ("Choose the best answer.\n" + _typo(q),
                                                        _labelled(_reversed(o), lambda i: f"({'abcdefghij'[i]}) ")),
}


def _short_stems(suite_items: dict) -> list:
    """Every MedMCQA item of the small suite with a question under 10 words (too short for either
    rule to look for the question alone)."""
    return [item for item in suite_items["MedMCQA_validation"] if len(item.question.split()) < 10]


@pytest.mark.parametrize("kind", list(PERTURBATIONS))
@pytest.mark.parametrize("length", ["short", "long"])
def test_every_kind_of_leak_is_caught_on_short_and_long_stems(small_suite: Path, suite_items: dict,
                                                               kind: str, length: str) -> None:
    source = "MedMCQA_validation" if length == "short" else "MedQA_USLME_test"
    items = _short_stems(suite_items) if length == "short" else suite_items[source][:20]
    assert len(items) >= 20
    rows = [_row(*PERTURBATIONS[kind](item.question, item.options), uid=f"leak-{i}")
            for i, item in enumerate(items)]
    outcomes = stage_for(small_suite).process_batch(rows)
    for item, outcome in zip(items, outcomes):
        assert isinstance(outcome, Drop), f"{kind} copy of {item.question!r} was kept"
        assert outcome.reason == f"contaminated: {source}"
        assert re.search(rf"{source}/{item.uid} \((question\+options|question) view, ", outcome.detail), outcome.detail


def test_a_grown_short_stem_is_found_by_containment_and_named(small_suite: Path, suite_items: dict) -> None:
    short = _short_stems(suite_items)
    rows = [make_row(*PERTURBATIONS["all of these"](item.question, item.options)) for item in short]
    outcomes = stage_for(small_suite).process_batch(rows)
    for item, outcome in zip(short, outcomes):
        # Only the question+options view looks for a short stem, and the detail gives both shares.
        assert re.fullmatch(rf"MedMCQA_validation/{item.uid} \(question\+options view, contained (0\.9[5-9]\d|1\.000), "
                            rf"[01]\.\d\d of its 3-grams\)", outcome.detail), outcome.detail
    # The symmetric rule alone (the stage before containment) keeps every one of these rows.
    symmetric_only = stage_for(small_suite, containment=None).process_batch(rows)
    assert not any(isinstance(outcome, Drop) for outcome in symmetric_only)


def test_near_misses_are_kept(small_suite: Path, suite_items: dict) -> None:
    short = _short_stems(suite_items)
    medqa = suite_items["MedQA_USLME_test"][:20]
    rows = [
        # A short stem, grown as a leak would be, with another item's options: the same stem is
        # not the same item ("Skeletal muscles", "Iron is present in all, EXCEPT").
        *(make_row("Question 12: " + item.question + "\nChoose the best answer.", other.options)
          for item, other in zip(short, short[1:] + short[:1])),
        # Generic stems that every exam repeats, with options of an item whose question differs.
        *(make_row(stem, item.options) for stem, item in zip(
            ["Which of the following statements is not true?", "All of the following are true except:",
             "Which of the following is the most likely diagnosis?", "Choose the best answer."], medqa)),
        # The same topic: half of a vignette, then another question, with another item's options.
        *(make_row(" ".join(item.question.split()[:len(item.question.split()) // 2]) +
                   " What is the most appropriate next step in management?", other.options)
          for item, other in zip(medqa, medqa[1:] + medqa[:1])),
    ]
    outcomes = stage_for(small_suite).process_batch(rows)
    flagged = [(row["question"], outcome.detail) for row, outcome in zip(rows, outcomes) if isinstance(outcome, Drop)]
    assert flagged == []


def _shared_stem_items(real_suite: dict) -> list[dict]:
    """Real MedMCQA items with short stems whose options are near copies of each other ("2 month",
    "3 month"): one option of a row is within a character or two of several of them."""
    found = []
    for item in real_suite["MedMCQA_validation"]:
        texts = [text for text in item["options"].values() if text]
        if len(question_view(item["question"]).split()) < 13 and len(texts) == 4 and all(
                sum(fuzz.ratio(text, other) >= 70 for other in texts) == 4 for text in texts):
            found.append(item)
    return found


def test_one_row_option_does_not_stand_for_several(real_suite: dict, tmp_path: Path) -> None:
    items = _shared_stem_items(real_suite)
    assert len(items) >= 20
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"MedMCQA_validation": items}), encoding="utf-8")
    rows = []
    for item in items:
        texts = list(item["options"].values())
        # The stem, one of its options and an unrelated one: a question with another answer set.
        for keep in texts:
            rows.append(make_row("Question 3: " + item["question"], {"A": keep, "B": "Penicillin G benzathine"}))
    outcomes = stage_for(suite).process_batch(rows)
    assert [row["options"] for row, outcome in zip(rows, outcomes) if isinstance(outcome, Drop)] == []
    # With all of its options, each of those stems is found.
    copies = [make_row("Question 3: " + item["question"], _reversed(item["options"])) for item in items]
    assert all(isinstance(outcome, Drop) for outcome in stage_for(suite).process_batch(copies))


def test_other_options_written_or_given_are_not_the_item(small_suite: Path, suite_items: dict) -> None:
    short = _short_stems(suite_items)
    others = short[1:] + short[:1]
    rows = [
        # The short stem with another item's options written into the question, placeholders as options.
        *(make_row(_written_in(item.question, other.options), {k: k for k in other.options})
          for item, other in zip(short, others)),
        *(_row(_written_in(item.question, other.options), {}) for item, other in zip(short, others)),
        # The short stem with two of its options and two of another item's: half of an answer set.
        *(make_row(item.question, dict(zip("ABCD", list(item.options.values())[:2] + list(other.options.values())[:2])))
          for item, other in zip(short, others) if len(item.options) == 4),
        # Generic stems with placeholder options: nothing but the stem to find.
        *(make_row(stem, {"A": "A", "B": "B", "C": "C", "D": "D"}) for stem in
          ["Which of the following is true?", "All of the following are true except:", "Drug of choice is"]),
    ]
    outcomes = stage_for(small_suite).process_batch(rows)
    flagged = [(row["question"], row["options"], outcome.detail)
               for row, outcome in zip(rows, outcomes) if isinstance(outcome, Drop)]
    assert flagged == []


def test_containment_settings_are_validated_and_can_be_turned_off(small_suite: Path, suite_items: dict) -> None:
    item = _short_stems(suite_items)[0]
    row = make_row(*PERTURBATIONS["prefix"](item.question, item.options))
    assert isinstance(stage_for(small_suite).process_batch([row])[0], Drop)
    assert stage_for(small_suite, containment=None).process_batch([row]) == [row]
    # A threshold stricter than what the copy (with a typo) reaches keeps it.
    typo = make_row(*PERTURBATIONS["all of these"](item.question, item.options))
    assert stage_for(small_suite, containment={"threshold": 1.0}).process_batch([typo]) == [typo]
    with pytest.raises(ValueError, match="ngram_wrods"):
        DecontamConfig(containment={"ngram_wrods": 2})
