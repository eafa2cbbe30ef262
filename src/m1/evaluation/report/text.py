"""How the report writes a number in a table cell, a legend or a caption: one home for each form."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from m1.evaluation.report.load import RunResult, Score


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def with_ci(score: Score | None) -> str:
    return "—" if score is None else f"{pct(score.accuracy)} ({pct(score.ci_low)}–{pct(score.ci_high)})"


def budget_text(budget: int | None) -> str:
    return "no thinking" if budget is None else str(budget)


def short_budget(budget: int) -> str:
    return f"{budget // 1024}K" if budget >= 1024 and budget % 1024 == 0 else str(budget)


def number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def p_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def early_exit_rule(settings: dict[str, Any] | None) -> str:
    """An early-exit setting in a few words, e.g. "confidence ≥ 0.9, every 64, transitions (observe)"."""
    if not settings:
        return "—"
    method = settings.get("method")
    rule = f"confidence ≥ {settings.get('threshold'):g}" if method == "confidence" else f"{settings.get('agree')} agree"
    when = [f"every {settings['every']}"] if settings.get("every") else []
    if settings.get("transitions") is None or settings.get("transitions"):  # None: the default transitions
        when.append("transitions")
    return ", ".join([rule, *when]) + (" (observe)" if settings.get("observe") else "")


def view_command(runs: Sequence[RunResult]) -> str:
    """The `m1 view` command whose run names the report's links use: its runs, in its order."""
    return "m1 view " + " ".join(shlex.quote(str(run.path)) for run in runs)
