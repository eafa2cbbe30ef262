"""The item list's filters on synthetic runs whose every answer is chosen here, so that each count
is known by construction: search, source, domain, correctness, no answer, rule, budget hit, flips
(within a run and across two), the sort, paging, facets that leave their own filter out, majority
votes at a several-sample point, and a bad value of every parameter named in its error."""

from __future__ import annotations

from dataclasses import replace

import pytest

from m1.viewing import Catalog, QueryError, list_items, open_runs, parse_query
from m1.viewing.query import PARAMS, facet_values

from .stores import Answer, make_items, make_run, write_domains

ITEMS = make_items({"S1": 5, "S2": 3})
UIDS = [item.uid for item in ITEMS]
# Gold is A everywhere. B16: right S1-0, S1-3, S2-0; no answer S1-2, S2-1. B32: right S1-1, S1-2, S1-3, S2-0, S2-2.
B16 = {"S1-0": Answer("A", 3), "S1-1": Answer("B", 9), "S1-2": Answer(None, 5), "S1-3": Answer("A", 16, True),
       "S1-4": Answer("B", 16, True), "S2-0": Answer("A", 7), "S2-1": Answer(None, 1), "S2-2": Answer("C", 12)}
B32 = {"S1-0": Answer("B", 20), "S1-1": Answer("A", 30), "S1-2": Answer("A", 32, True), "S1-3": Answer("A", 8),
       "S1-4": Answer("B", 32, True), "S2-0": Answer("A", 4), "S2-1": Answer(None, 32, True), "S2-2": Answer("A", 2)}
# Three samples each: the majority vote is A (right), B (a tie with C goes to the first voted), none, A.
VOTED = {"S1-0": ["A", "B", "A"], "S1-1": ["B", None, "C"], "S1-2": [None, None, None], "S1-3": ["C", "A", "A"]}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    root = tmp_path_factory.mktemp("runs")
    labels = write_domains(root / "labels.jsonl", {"S1-0": ("24", "Drug Therapy"), "S1-1": ("24", "Drug Therapy"),
                                                   "S1-2": ("24", "Drug Therapy"), "S1-3": ("20", "Diagnosis")})
    main = make_run(root, "main", ITEMS, {"B16_K1": {u: [a] for u, a in B16.items()},
                                          "B32_K1": {u: [a] for u, a in B32.items()}}, [16, 32], domains=labels)
    # Another model on the first five items only: right on S1-0 and S1-1.
    other = make_run(root / "b", "other", ITEMS[:5], {"B16_K1": {u: [Answer("A" if u in ("S1-0", "S1-1") else "D")]
                                                                 for u in UIDS[:5]}}, [16])
    voted = make_run(root, "voted", ITEMS[:4], {"B16_K1_N3": {
        u: [Answer(letter, 10 + s, budget_hit=(u == "S1-1" and s == 2)) for s, letter in enumerate(letters)]
        for u, letters in VOTED.items()}}, [16], samples=[3])
    return Catalog(open_runs([main, other, voted]))


def run(catalog: Catalog, **params: str | list[str]):
    pairs = [(name, v) for name, value in params.items() for v in ([value] if isinstance(value, str) else value)]
    with catalog.reading() as db:
        return list_items(db, catalog, parse_query(pairs, catalog, *facet_values(db)))


def uids(page) -> list[str]:
    return [item.uid for item in page.items]


def test_every_item_of_every_run_once_in_order(catalog):
    page = run(catalog)
    assert (page.total, page.universe) == (8, 8) and uids(page) == UIDS
    assert page.facets["source"] == {"S1": 5, "S2": 3}
    assert page.facets["domain"] == {"Diagnosis": 1, "Drug Therapy": 3, "unlabelled": 4}


def test_search_source_and_domain(catalog):
    assert uids(run(catalog, q="WHICH ORGAN 2")) == ["S1-2", "S2-2"]
    assert uids(run(catalog, q="of s2")) == ["S2-0", "S2-1", "S2-2"]
    page = run(catalog, source="S1", domain="Drug Therapy")
    assert uids(page) == ["S1-0", "S1-1", "S1-2"]
    # Each facet counts what the other filters leave: the sources within the domain, the domains within S1.
    assert page.facets["source"] == {"S1": 3}
    assert page.facets["domain"] == {"Diagnosis": 1, "Drug Therapy": 3, "unlabelled": 1}


def test_correct_no_answer_rule_and_budget_at_a_point(catalog):
    at = {"point": "main:B16_K1"}
    assert uids(run(catalog, **at, correct="true")) == ["S1-0", "S1-3", "S2-0"]
    wrong = run(catalog, **at, correct="false")
    assert uids(wrong) == ["S1-1", "S1-2", "S1-4", "S2-1", "S2-2"]
    assert wrong.facets["correct"] == {"true": 3, "false": 5}
    assert wrong.facets["no_answer"] == {"true": 2, "false": 3}
    assert uids(run(catalog, **at, no_answer="true")) == ["S1-2", "S2-1"]
    assert uids(run(catalog, **at, rule="no_answer")) == ["S1-2", "S2-1"]
    assert run(catalog, **at).facets["rule"] == {"boxed_letter": 6, "no_answer": 2}
    assert uids(run(catalog, **at, budget_hit="true")) == ["S1-3", "S1-4"]
    assert uids(run(catalog, **at, budget_hit="true", correct="false", source="S1")) == ["S1-4"]
    # A bare key names the point of the one run asked for.
    assert uids(run(catalog, run="main", point="B32_K1", correct="true")) == ["S1-1", "S1-2", "S1-3", "S2-0", "S2-2"]


def test_flips_within_a_run_and_across_runs(catalog):
    flips = {"flip_from": "main:B16_K1", "flip_to": "main:B32_K1"}
    assert uids(run(catalog, **flips, flip="right_to_wrong")) == ["S1-0"]
    page = run(catalog, **flips, flip="wrong_to_right")
    assert uids(page) == ["S1-1", "S1-2", "S2-2"]
    assert page.facets["flip"] == {"right_to_wrong": 1, "wrong_to_right": 3, "either": 4, "unchanged": 4}
    assert uids(run(catalog, **flips, flip="either", source="S2")) == ["S2-2"]
    # main vs other at B16: other answers only S1-*, right on S1-0 and S1-1.
    across = run(catalog, flip_from="main:B16_K1", flip_to="other:B16_K1", flip="either")
    assert uids(across) == ["S1-1", "S1-3"]
    assert across.facets["flip"] == {"right_to_wrong": 1, "wrong_to_right": 1, "either": 2, "unchanged": 3}


def test_sort_by_thinking_tokens_and_paging(catalog):
    ascending = run(catalog, point="main:B16_K1", sort="thinking_asc")
    assert uids(ascending) == ["S2-1", "S1-0", "S1-2", "S2-0", "S1-1", "S2-2", "S1-3", "S1-4"]
    assert uids(run(catalog, point="main:B16_K1", sort="thinking_desc"))[:3] == ["S1-3", "S1-4", "S2-2"]
    # Items the point has no prediction for come last, in item order.
    assert uids(run(catalog, point="other:B16_K1", sort="thinking_desc"))[5:] == ["S2-0", "S2-1", "S2-2"]
    pages = [run(catalog, per_page="3", page=str(n)) for n in (1, 2, 3, 4)]
    assert [uids(p) for p in pages[:3]] == [UIDS[:3], UIDS[3:6], UIDS[6:]]
    assert all(p.total == 8 and p.pages == 3 for p in pages) and pages[3].items == []
    assert [item.position for item in pages[1].items] == [4, 5, 6]


def test_runs_narrow_the_items_and_the_columns(catalog):
    page = run(catalog, run="other")
    assert uids(page) == UIDS[:5]
    assert set(page.items[0].cells) == {"other:B16_K1"}
    both = run(catalog, run=["main", "other"])
    assert uids(both) == UIDS[:5] and set(both.items[0].cells) == {"main:B16_K1", "main:B32_K1", "other:B16_K1"}
    cell = run(catalog).items[1].cells["main:B16_K1"]
    assert (cell.letter, cell.correct, cell.thinking_tokens, cell.budget_hit) == ("B", False, 9.0, False)


def test_several_samples_read_the_majority_vote(catalog):
    at = {"point": "voted:B16_K1_N3"}
    assert uids(run(catalog, **at, correct="true")) == ["S1-0", "S1-3"]
    assert uids(run(catalog, **at, no_answer="true")) == ["S1-2"]
    cells = {item.uid: item.cells["voted:B16_K1_N3"] for item in run(catalog, run="voted").items}
    assert {uid: (c.letter, c.samples) for uid, c in cells.items()} == {
        "S1-0": ("A", 3), "S1-1": ("B", 3), "S1-2": (None, 3), "S1-3": ("A", 3)}
    assert cells["S1-0"].thinking_tokens == 11.0  # the mean of 10, 11, 12
    # Rule and budget match when any sample does.
    assert uids(run(catalog, **at, rule="no_answer")) == ["S1-1", "S1-2"]
    assert uids(run(catalog, **at, budget_hit="true")) == ["S1-1"]


@pytest.mark.parametrize(("params", "param", "says"), [
    ({"nonsense": "1"}, "nonsense", "unknown parameter"),
    ({"source": "S9"}, "source", "'S9' is not one of the values; allowed: S1, S2"),
    ({"domain": "Surgery"}, "domain", "allowed: Diagnosis, Drug Therapy"),
    ({"run": "nobody"}, "run", "allowed: main, other, voted"),
    ({"point": "B16_K1"}, "point", "several runs: name the run; allowed: main:B16_K1, other:B16_K1"),
    ({"point": "main:B99_K0"}, "point", "no grid point 'main:B99_K0'"),
    ({"point": "main:B16_K1", "mode": "lenient"}, "mode", "allowed: reference, strict"),
    ({"point": "main:B16_K1", "correct": "yes"}, "correct", "allowed: true, false"),
    ({"correct": "true"}, "point", "correct reads a grid point: give point="),
    ({"sort": "thinking_asc"}, "point", "sort reads a grid point"),
    ({"sort": "random"}, "sort", "allowed: order, thinking_asc, thinking_desc"),
    ({"point": "main:B16_K1", "rule": "vibes"}, "rule", "allowed: boxed_letter"),
    ({"flip": "either", "flip_from": "main:B16_K1"}, "flip_to", "give flip_from= and flip_to="),
    ({"flip": "either", "flip_from": "main:B16_K1", "flip_to": "main:B16_K1"}, "flip_to", "same point"),
    ({"flip": "sideways"}, "flip", "allowed: right_to_wrong, wrong_to_right, either"),
    ({"page": "0"}, "page", "not a whole number from 1 to 1000000"),
    ({"page": "9" * 5000}, "page", "not a whole number"),
    ({"per_page": "501"}, "per_page", "from 1 to 500"),
    ({"page": "٣"}, "page", "not a whole number"),
    ({"q": "x" * 501}, "q", "longer than 500 characters"),
    ({"source": ["S1", "S2"]}, "source", "given 2 times; give it once"),
])
def test_bad_values_name_the_parameter_and_what_it_takes(catalog, params, param, says):
    with pytest.raises(QueryError) as caught:
        run(catalog, **params)
    assert caught.value.param == param and says in str(caught.value)


def test_empty_values_are_no_filter_and_links_round_trip(catalog):
    empty = {name: "" for name in PARAMS}
    assert uids(run(catalog, **empty)) == UIDS
    page = run(catalog, q="organ", point="B32_K1", run="main", correct="false", sort="thinking_desc", page="1",
               per_page="2", mode="reference")
    params = page.query.params(page=2)
    assert params == [("q", "organ"), ("run", "main"), ("point", "main:B32_K1"), ("mode", "reference"),
                      ("correct", "false"), ("sort", "thinking_desc"), ("page", "2"), ("per_page", "2")]
    assert run(catalog, **dict(params)).query == replace(page.query, page=2)


def test_at_most_eight_runs_side_by_side(catalog):
    with pytest.raises(ValueError, match="at most 8 runs"):
        Catalog(catalog.runs * 3)
