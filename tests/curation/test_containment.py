"""The containment index: items found inside longer texts, typos tolerated, options matched as options."""

from __future__ import annotations

import pytest

from m1.curation.containment import ContainmentIndex, ContainmentSettings, Probe, ngrams
from m1.curation.text import item_segments

STEM = "drug of choice for absence seizures in children"
OPTIONS = ["ethosuximide", "valproate", "phenytoin", "carbamazepine"]
ADDED = [("question 12 ", ""), ("", " choose the best answer"), ("the following is a medical exam question ",
                                                                 " answer with the letter of the correct option")]


def probe(question: str, options: list[str]) -> Probe:
    return Probe.of(question, options, ContainmentSettings().ngram_words)


def index_of(*items: tuple[str, str, list[str]], **settings) -> ContainmentIndex:
    index = ContainmentIndex(ContainmentSettings(**settings))
    for key, question, options in items:
        index.add(key, question, options)
    return index


def test_ngrams_stay_inside_segments_and_short_segments_are_one() -> None:
    assert ngrams(["a b c d", "x y"], 3) == {("a", "b", "c"), ("b", "c", "d"), ("x", "y")}
    assert ngrams(["", "one"], 3) == {("one",)}


@pytest.mark.parametrize("before, after", ADDED)
def test_text_added_around_an_item_costs_nothing_and_a_typo_a_character(before: str, after: str) -> None:
    index = index_of(("eval/1", STEM, OPTIONS))
    [exact] = index.find(probe(before + STEM + after, list(reversed(OPTIONS))))
    assert exact.key == "eval/1" and exact.contained == 1.0 and exact.ngram_share == 1.0
    typo = STEM.replace("absence", "absnece")
    [found] = index.find(probe(before + typo + after, OPTIONS))
    total = len(STEM) + sum(map(len, OPTIONS))
    assert 1 - 2 / total <= found.contained < 1.0  # a swap costs one or two characters of the item
    assert found.ngram_share < 1.0 and f"contained {found.contained:.3f}" in found.closeness


def test_a_different_word_is_not_a_typo() -> None:
    index = index_of(("eval/1", STEM, OPTIONS))
    assert index.find(probe("question 3 drug of choice for myoclonic seizures in children", OPTIONS)) == []


def test_options_must_be_found_among_the_options() -> None:
    stages = ["stage 1", "stage 2", "stage 3", "stage 4"]
    index = index_of(("eval/stage", "in choriocarcinoma lung metastasis occurs in which stage", stages))
    long_options = [f"a tumour of stage {n} spreads to the lung" for n in range(1, 5)]
    question = "q 1 in choriocarcinoma lung metastasis occurs in which stage"
    assert index.find(probe(question, long_options)) == []  # "stage 1" is in the text, not an option
    assert [match.key for match in index.find(probe(question, stages))] == ["eval/stage"]


def test_options_alone_never_contain_an_item() -> None:
    options = ["contracts when calcium is taken up by sarcoplasmic reticulum",
               "contraction is initiated by calcium binding to troponin"]
    index = index_of(("eval/muscle", "skeletal muscles", options))
    # 95 % of this item's characters are its options, but its question is not in the probe.
    assert index.find(probe("which of the following increases callus formation", options)) == []
    assert index.find(probe("question skeletal muscles", options))[0].key == "eval/muscle"


def test_a_shorter_probe_does_not_contain_a_longer_item() -> None:
    index = index_of(("eval/1", STEM + " who are otherwise well and attend school", []))
    assert index.find(probe(STEM, [])) == []


def test_common_ngrams_still_count_and_the_first_of_equals_wins() -> None:
    generic = "which of the following is the drug of choice"
    index = index_of(("eval/a", generic + " for absence seizures", OPTIONS),
                     ("eval/b", generic + " for absence seizures", OPTIONS),  # an exact repeat: keeps eval/a
                     ("eval/c", generic + " for status epilepticus", ["lorazepam", "phenytoin"]),
                     common_ngram_texts=1)
    assert len(index) == 2
    [match] = index.find(probe("q 9 " + generic + " for absence seizures", OPTIONS))
    assert match.key == "eval/a" and match.ngram_share == 1.0  # the shared n-grams are counted too


def test_labels_share_one_lookup_and_each_answers_its_best() -> None:
    question, *options = item_segments("A 45-year-old man has crushing chest pain radiating to the left arm "
                                       "for two hours; which artery is most likely occluded?",
                                       {"A": "Right coronary artery", "B": "Left circumflex"})
    index = ContainmentIndex(ContainmentSettings())
    index.add("eval/1", question, options, label="question+options")
    index.add("eval/1", question, [], label="question")
    found = index.find(probe("case 4 " + question, ["aortic dissection", "pericarditis"]))
    assert [(match.label, match.key) for match in found] == [("question", "eval/1")]
    both = index.find(probe("case 4 " + question, list(reversed(options))))
    assert sorted(match.label for match in both) == ["question", "question+options"]


def test_items_added_after_a_lookup_are_found_and_keep_their_common_ngrams() -> None:
    generic = "which of the following is the drug of choice"
    items = [("eval/a", generic + " for absence seizures", OPTIONS),
             ("eval/b", generic + " for trigeminal neuralgia", ["carbamazepine", "gabapentin"]),
             ("eval/c", generic + " for status epilepticus", ["lorazepam", "phenytoin"])]
    index = index_of(*items[:2], common_ngram_texts=1)  # the generic n-grams are common at once
    assert index.find(probe(items[2][1], items[2][2])) == []
    index.add(*items[2])
    for key, question, options in items:
        [match] = index.find(probe("q 1 " + question, options))
        assert match.key == key and match.ngram_share == 1.0


def test_one_probe_option_stands_for_one_item_option() -> None:
    months = ["2 month", "3 month", "4 month", "5 month"]
    question = "at what age does a child first smile socially"
    index = index_of(("eval/smile", question, months))
    assert [match.key for match in index.find(probe("q 2 " + question, list(reversed(months))))] == ["eval/smile"]
    # "5 month" is within a digit of every option, but it is one option: three are missing.
    assert index.find(probe("q 2 " + question, ["5 month", "penicillin g benzathine"])) == []
    assert index.find(probe("q 2 " + question, ["5 month", "6 weeks", "1 year", "penicillin g benzathine"])) == []


@pytest.mark.parametrize("placeholders", [[], ["a", "b", "c", "d"], ["option a", "option b", "option c", "option d"]])
def test_options_written_into_the_question_are_found_there_when_the_options_are_placeholders(
        placeholders: list[str]) -> None:
    index = index_of(("eval/1", STEM, OPTIONS))
    written = "q 4 " + STEM + " " + " ".join(f"{letter} {text}" for letter, text in zip("abcd", OPTIONS))
    [match] = index.find(probe(written, placeholders))
    assert match.key == "eval/1" and match.contained == 1.0
    # Other options written there: the stem alone is not the item.
    other = "q 4 " + STEM + " a lorazepam b phenytoin c diazepam d levetiracetam"
    assert index.find(probe(other, placeholders)) == []


def test_options_in_the_question_do_not_count_when_the_row_has_options_of_its_own() -> None:
    # Options such as "1" or "a" are inside almost any question: only a row without real options of
    # its own is taken to have written them there.
    index = index_of(("eval/1", STEM, OPTIONS))
    written = "q 4 " + STEM + " " + " ".join(f"{letter} {text}" for letter, text in zip("abcd", OPTIONS))
    assert index.find(probe(written, ["lorazepam", "phenytoin", "diazepam", "levetiracetam"])) == []
    # A copy of an item whose options are digits keeps them as options, and they still count there.
    counts = ["1", "2", "3", "4"]
    question = "how many pairs of cranial nerves carry parasympathetic fibres"
    index = index_of(("eval/count", question, counts))
    assert probe(question, counts).options_in_question
    assert index.find(probe("q 1 " + question, list(reversed(counts))))[0].contained == 1.0
