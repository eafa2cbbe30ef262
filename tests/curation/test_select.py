"""The m1k sampler and the ablation samplers: seeded, without replacement, diverse by construction."""

from __future__ import annotations

from collections import Counter

import pytest

from m1.curation.select import Select, SelectConfig, draw
from m1.curation.stage import Drop
from m1.data.errors import DataError

from .conftest import make_row

SOURCES = ["MedMCQA", "MedQA", "HeadQA", "PubMedQA"]


def pool(sizes: dict[str, int]) -> list[dict]:
    """Rows spread unevenly over domains (code: count) and sources, the way real pools are."""
    rows = []
    for code, count in sizes.items():
        for i in range(count):
            source = SOURCES[0] if i % 10 else SOURCES[1 + (i // 10) % 3]  # mostly MedMCQA
            rows.append(make_row(f"{code} question {i}", {"A": "x", "B": "y"}, source=source, uid=f"{code}-{i}",
                                 domain={"code": code, "name": f"domain {code}"},
                                 difficulty={"n_wrong": i % 3}, teacher={"reasoning": "r" * i}))
    return rows


SIZES = {"20": 400, "24": 200, "50": 60, "07": 5, "71": 1}


def test_m1k_is_seed_stable_without_replacement_and_covers_every_domain() -> None:
    rows = pool(SIZES)
    first = draw(rows, "m1k", 100, seed=42)
    assert first == draw(rows, "m1k", 100, seed=42)
    assert first != draw(rows, "m1k", 100, seed=43)
    assert len(first) == len(set(first)) == 100
    domains = Counter(rows[i]["domain"]["code"] for i in first)
    assert set(domains) == set(SIZES)  # the one-row domain too
    # Uniform over domains, not proportional: the big domain does not dominate.
    assert domains["20"] < 40 and domains["07"] == 5
    # Within a domain, sources are drawn uniformly: the rare sources are over-represented.
    sources = Counter(rows[i]["source"] for i in first)
    assert sources["MedMCQA"] < 70


def test_domain_only_random_and_hard_random() -> None:
    rows = pool(SIZES)
    domain_only = draw(rows, "domain-only", 50, seed=42)
    assert len(set(domain_only)) == 50 and {rows[i]["domain"]["code"] for i in domain_only} == set(SIZES)
    assert len(set(draw(rows, "random", 50, seed=42))) == 50
    hard = draw(rows, "hard-random", 50, seed=42, hard_fraction=0.1)
    # The hardest tenth: two base models wrong, and the longest reasoning among those.
    assert all(rows[i]["difficulty"]["n_wrong"] == 2 for i in hard)
    cutoff = sorted((len(r["teacher"]["reasoning"]) for r in rows if r["difficulty"]["n_wrong"] == 2), reverse=True)[66]
    assert all(len(rows[i]["teacher"]["reasoning"]) >= cutoff for i in hard)


def test_select_stage_keeps_the_draw_and_reports_it() -> None:
    rows = pool(SIZES)
    stage = Select(SelectConfig(n=30))
    outcomes = stage.process_all(rows)
    kept = [o for o in outcomes if not isinstance(o, Drop)]
    assert len(kept) == 30 and {o.reason for o in outcomes if isinstance(o, Drop)} == {"not selected"}
    report = stage.report(kept, [])
    assert sorted(report["selected_uids"]) == sorted(row["uid"] for row in kept)
    assert sum(report["by_domain"].values()) == 30 and report["notes"] == []


def test_asking_for_more_than_available_takes_all_with_a_note() -> None:
    rows = pool({"20": 3, "24": 2})
    stage = Select(SelectConfig(n=1000))
    assert all(not isinstance(o, Drop) for o in stage.process_all(rows))
    assert stage.report([], [])["notes"] == ["asked for 1000 rows but only 5 are available: all are taken"]


def test_m1k_needs_domains() -> None:
    rows = [make_row(f"q{i}", {"A": "x", "B": "y"}) for i in range(3)]
    with pytest.raises(DataError, match="select.method.*no row has one"):
        Select(SelectConfig(n=2)).process_all(rows)
    drawn = Select(SelectConfig(method="random", n=2)).process_all(rows)
    assert len([o for o in drawn if not isinstance(o, Drop)]) == 2
