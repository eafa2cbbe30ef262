"""The budget audit: how a grid point's thinking budget was honoured, from its predictions rows,
whatever backend wrote them.

    audit = audit_point(rows, budget=512)       # what score_run puts in each point's `audit`
    audit["verdict"], audit["sources"]["MedQA_USLME_test"]["over_budget"]
    audit_file(rows)                            # `m1 score --json`: one audit per requested budget

Every generation is one item-generation: a point with N samples per item audits N rows per item,
so its counts, shares and percentiles are over generations, not items. Per row it reads:

    thinking_tokens   the count checked against the budget, unless thinking_count is "none" (the
                      backend knew no count): such a row is "uncounted" and not checked
    answer / reply    blank: an empty answer (`answer` where the row has one, else `reply`)
    answer_end        "length", or the provider's finish_reason "length": the answer was cut
    thinking_closed   False: thinking never closed; m1's own rows have no such field, since m1
                      closes thinking itself, so there only a row with an error counts
    reported_thinking_tokens, recounted_thinking_tokens
                      the provider's and m1's counts; rows with both are compared, and disagree
                      when they differ by more than 5 % of m1's recount
    error, cost, effort

The verdict strings live here (`HONOURED` …, `exceeded`) and nowhere else.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

HONOURED = "honoured"  # no counted generation over budget
NOT_ENFORCED = "not enforced"  # more than half of the counted generations over budget
NO_BUDGET = "no budget"  # the point asked for no numeric budget (no thinking, or an effort level only)
NOT_COUNTED = "not counted"  # no generation had a thinking count to check
EXCEEDED = "exceeded in {n} items"  # some, but not more than half, over budget
# Reported and recounted thinking tokens disagree beyond this share of the recount (exactly 5 % agrees).
DISAGREEMENT_PERCENT = 5


def exceeded(n: int) -> str:
    return EXCEEDED.format(n=n)


def verdict(budget: int | None, counted: int, over: int) -> str:
    if budget is None:
        return NO_BUDGET
    if not counted:
        return NOT_COUNTED
    if not over:
        return HONOURED
    return NOT_ENFORCED if 2 * over > counted else exceeded(over)


def percentile(values: Sequence[int], share: float) -> int:
    """The nearest-rank percentile: the smallest value with at least `share` of `values` at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def counted_tokens(row: dict[str, Any]) -> int | None:
    """The thinking count a budget check reads, or None when the row has none to check."""
    tokens = row.get("thinking_tokens")
    if row.get("thinking_count") == "none" or not isinstance(tokens, int) or isinstance(tokens, bool):
        return None
    return tokens


def counts_disagree(reported: int, recounted: int) -> bool:
    # In integers, so that exactly 5 % is not a disagreement whatever the rounding.
    return 100 * abs(reported - recounted) > DISAGREEMENT_PERCENT * recounted


def _blank(row: dict[str, Any]) -> bool:
    text = row["answer"] if "answer" in row else row.get("reply")
    return not (text or "").strip()


def _cut(row: dict[str, Any]) -> bool:
    return row.get("answer_end") == "length" or row.get("finish_reason") == "length"


def _never_closed(row: dict[str, Any]) -> bool:
    if "thinking_closed" in row:
        return row["thinking_closed"] is False
    return bool(row.get("error"))


def _cost(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """What the priced rows cost: the total, and per item (all its samples), over the items priced."""
    priced = [row for row in rows if isinstance(row.get("cost"), (int, float))]
    if not priced:
        return None
    total = math.fsum(row["cost"] for row in priced)
    return {"total": total, "per_item": total / len({row.get("uid") for row in priced}), "rows": len(priced)}


def audit_rows(rows: Sequence[dict[str, Any]], budget: int | None) -> dict[str, Any]:
    """The audit of some generations against the requested `budget` (None: no numeric budget)."""
    tokens = [t for t in map(counted_tokens, rows) if t is not None]
    overshoot = [] if budget is None else [t - budget for t in tokens if t > budget]
    compared = [(row["reported_thinking_tokens"], row["recounted_thinking_tokens"]) for row in rows
                if row.get("reported_thinking_tokens") is not None
                and row.get("recounted_thinking_tokens") is not None]
    disagreeing = sum(counts_disagree(reported, recounted) for reported, recounted in compared)
    efforts = {row["effort"] for row in rows if row.get("effort") is not None}
    return {
        "budget": budget,
        "effort": ", ".join(sorted(map(str, efforts))) or None,
        "generations": len(rows),
        "counted": len(tokens),
        "uncounted": len(rows) - len(tokens),
        "thinking_tokens_median": float(statistics.median(tokens)) if tokens else None,
        "thinking_tokens_p95": percentile(tokens, 0.95) if tokens else None,
        "thinking_tokens_max": max(tokens, default=None),
        "over_budget": len(overshoot),
        "over_budget_rate": len(overshoot) / len(tokens) if tokens and budget is not None else None,
        "overshoot_mean": statistics.fmean(overshoot) if overshoot else None,
        "overshoot_max": max(overshoot, default=None),
        "empty_answers": sum(map(_blank, rows)),
        "cut_by_length": sum(map(_cut, rows)),
        "never_closed": sum(map(_never_closed, rows)),
        "count_compared": len(compared),
        "count_disagreements": disagreeing,
        "count_disagreement_rate": disagreeing / len(compared) if compared else None,
        "errors": sum(1 for row in rows if row.get("error")),
        "cost": _cost(rows),
        "verdict": verdict(budget, len(tokens), len(overshoot)),
    }


def audit_point(rows: Sequence[dict[str, Any]], budget: int | None) -> dict[str, Any]:
    """A grid point's audit: over all its generations, then per source (in the order first seen)."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_source.setdefault(str(row.get("source")), []).append(row)
    return audit_rows(rows, budget) | {"sources": {source: audit_rows(group, budget)
                                                   for source, group in by_source.items()}}


def audit_file(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A predictions file's audits: one per requested budget its rows name (usually one), in the
    order first seen; a row's `budget` is what it asked for (absent or null: no numeric budget)."""
    by_budget: dict[int | None, list[dict[str, Any]]] = {}
    for row in rows:
        budget = row.get("budget")
        by_budget.setdefault(budget if isinstance(budget, int) else None, []).append(row)
    return [audit_point(group, budget) for budget, group in by_budget.items()]
