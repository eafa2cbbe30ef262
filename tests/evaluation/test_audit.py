"""The budget audit (`m1.evaluation.audit`) on synthetic predictions rows: every verdict, the
percentiles and overshoot, the per-source split, the 5 % count threshold, uncounted, error and
several-sample rows, cost; then the summary model that types it and `m1 score --json`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from m1.cli import app
from m1.evaluation.audit import (
    HONOURED,
    NO_BUDGET,
    NOT_COUNTED,
    NOT_ENFORCED,
    audit_file,
    audit_point,
    audit_rows,
    exceeded,
    percentile,
)
from m1.evaluation.summary import Audit

OPTIONS = {"A": "Liver", "B": "Kidney"}


def row(thinking: int | None, uid: str = "q", source: str = "MedQA", budget: int | None = 100, **extra) -> dict:
    """A predictions row as m1's runner writes one, with `extra` fields (a chat backend's) on top."""
    return {"uid": uid, "source": source, "options": OPTIONS, "answer_idx": "A", "reply": "\\boxed{A}",
            "answer": "\\boxed{A}", "budget": budget, "thinking_tokens": thinking, "answer_tokens": 3,
            "thinking_end": "natural_stop", "answer_end": "stop", "error": None} | extra


def rows_of(tokens: list[int], budget: int | None = 100) -> list[dict]:
    return [row(t, uid=f"q{i}", budget=budget) for i, t in enumerate(tokens)]


def test_each_verdict_has_its_string() -> None:
    assert audit_rows(rows_of([10, 100]), 100)["verdict"] == HONOURED == "honoured"
    assert audit_rows(rows_of([10, 100, 101]), 100)["verdict"] == exceeded(1) == "exceeded in 1 items"
    # Exactly half over is still "exceeded"; more than half is "not enforced".
    assert audit_rows(rows_of([10, 150, 20, 200]), 100)["verdict"] == "exceeded in 2 items"
    assert audit_rows(rows_of([10, 150, 200]), 100)["verdict"] == NOT_ENFORCED == "not enforced"
    assert audit_rows(rows_of([10, 5000], budget=None), None)["verdict"] == NO_BUDGET == "no budget"
    uncounted = [row(40, thinking_count="none"), row(None, uid="r")]
    assert audit_rows(uncounted, 100)["verdict"] == NOT_COUNTED == "not counted"


def test_percentiles_and_overshoot() -> None:
    tokens = list(range(1, 21))  # 1..20: nearest rank p95 is the 19th value
    audit = audit_rows(rows_of(tokens, budget=15), 15)
    percentiles = audit["thinking_tokens_median"], audit["thinking_tokens_p95"], audit["thinking_tokens_max"]
    assert percentiles == (10.5, 19, 20)
    assert audit["over_budget"] == 5 and audit["over_budget_rate"] == 0.25
    assert audit["overshoot_mean"] == 3.0 and audit["overshoot_max"] == 5  # 16..20 over 15 by 1..5
    assert audit["verdict"] == "exceeded in 5 items"
    assert percentile([7], 0.95) == 7 and percentile([1, 2], 0.5) == 1
    clean = audit_rows(rows_of([3, 4]), 100)
    assert clean["overshoot_mean"] is None and clean["overshoot_max"] is None and clean["over_budget_rate"] == 0.0


def test_no_budget_is_not_checked_and_keeps_the_effort() -> None:
    audit = audit_rows([row(900, budget=None, effort="high"), row(50, uid="r", budget=None, effort="high")], None)
    assert audit["effort"] == "high" and audit["over_budget"] == 0 and audit["over_budget_rate"] is None
    assert audit["thinking_tokens_max"] == 900 and audit["verdict"] == NO_BUDGET


def test_per_source_split() -> None:
    rows = [row(50, "a1", "MedQA"), row(150, "a2", "MedQA"), row(20, "b1", "PubMedQA"), row(30, "b2", "PubMedQA")]
    audit = audit_point(rows, 100)
    assert list(audit["sources"]) == ["MedQA", "PubMedQA"]
    assert audit["verdict"] == "exceeded in 1 items" and audit["generations"] == 4
    assert audit["sources"]["MedQA"]["verdict"] == "exceeded in 1 items"
    assert audit["sources"]["MedQA"]["over_budget_rate"] == 0.5
    assert audit["sources"]["PubMedQA"]["verdict"] == HONOURED and audit["sources"]["PubMedQA"]["generations"] == 2


def test_count_disagreement_threshold_is_exactly_five_percent() -> None:
    rows = [row(100, "at", reported_thinking_tokens=105, recounted_thinking_tokens=100),     # 5 %: agrees
            row(100, "below", reported_thinking_tokens=95, recounted_thinking_tokens=100),   # 5 % under: agrees
            row(100, "over", reported_thinking_tokens=106, recounted_thinking_tokens=100),   # 6 %: disagrees
            row(0, "zero", reported_thinking_tokens=1, recounted_thinking_tokens=0),         # any of 0: disagrees
            row(10, "one", reported_thinking_tokens=None, recounted_thinking_tokens=10),     # not compared
            row(10, "other", reported_thinking_tokens=10)]                                   # not compared
    audit = audit_rows(rows, 200)
    assert audit["count_compared"] == 4 and audit["count_disagreements"] == 2
    assert audit["count_disagreement_rate"] == 0.5
    assert audit_rows(rows_of([1]), 100)["count_disagreement_rate"] is None  # m1's rows carry neither count


def test_uncounted_rows_are_left_out_of_the_check() -> None:
    rows = [row(5000, "a", thinking_count="none"), row(50, "b", thinking_count="provider"),
            row(60, "c", thinking_count="recount")]
    audit = audit_rows(rows, 100)
    assert (audit["counted"], audit["uncounted"], audit["generations"]) == (2, 1, 3)
    assert audit["thinking_tokens_max"] == 60 and audit["verdict"] == HONOURED


def test_empty_cut_never_closed_and_error_rows() -> None:
    rows = [row(10, "empty", answer="  ", reply="Final answer: "),  # m1's reply holds the inserted prefix
            row(10, "chat-empty", reply="", finish_reason="stop", thinking_closed=True) | {"answer": None},
            row(10, "cut", answer_end="length"),
            row(10, "cut-by-provider", finish_reason="length", thinking_closed=False),
            row(0, "failed", error="prompt does not fit", answer="", reply="")]
    audit = audit_rows(rows, 100)
    assert audit["empty_answers"] == 3
    assert audit["cut_by_length"] == 2
    # A chat row says whether thinking closed; m1's own rows close it always, so only their errors count.
    assert audit["never_closed"] == 2
    assert audit["errors"] == 1 and audit["verdict"] == HONOURED


def test_several_samples_count_each_generation() -> None:
    rows = [row(t, uid=uid, sample=s) for uid in ("a", "b") for s, t in enumerate((50, 120, 60))]
    audit = audit_point(rows, 100)
    assert audit["generations"] == 6 and audit["over_budget"] == 2 and audit["verdict"] == "exceeded in 2 items"


def test_cost_is_summed_per_point_and_per_item() -> None:
    assert audit_rows(rows_of([1, 2]), 100)["cost"] is None
    rows = [row(1, "a", sample=0, cost=0.25), row(1, "a", sample=1, cost=0.5), row(1, "b", cost=0.25),
            row(1, "c", cost=None)]
    assert audit_rows(rows, 100)["cost"] == {"total": 1.0, "per_item": 0.5, "rows": 3}


def test_summary_types_the_audit() -> None:
    audit = Audit.model_validate(audit_point([row(50, "a"), row(150, "b", source="PubMedQA", cost=0.1)], 100))
    assert audit.verdict == "exceeded in 1 items" and audit.cost.total == 0.1
    assert audit.sources["PubMedQA"].overshoot_max == 50 and audit.sources["MedQA"].verdict == HONOURED


def test_a_file_is_audited_once_per_budget() -> None:
    audits = audit_file([row(50, "a"), row(300, "b", budget=256), row(20, "d", budget=256), {"uid": "c", "reply": "x"}])
    assert [(a["budget"], a["generations"], a["verdict"]) for a in audits] == [
        (100, 1, HONOURED), (256, 2, "exceeded in 1 items"), (None, 1, NO_BUDGET)]


def test_score_json_includes_the_audit(tmp_path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [row(50, "a"), row(150, "b"), row(170, "c")]))
    result = CliRunner().invoke(app, ["score", str(path), "--json"])
    assert result.exit_code == 0, result.output
    [audit] = json.loads(result.stdout)["audit"]
    assert audit["budget"] == 100 and audit["verdict"] == NOT_ENFORCED and audit["overshoot_max"] == 70
