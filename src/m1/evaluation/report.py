"""`m1 report RUN [RUN ...]`: turn finished `m1 eval` runs into an HTML report, a Markdown summary
and figures (PNG and SVG) that show how accuracy moves with the thinking budget.

    from m1.evaluation.report import write_report
    paths = write_report([Path("runs/m1-7B-23K-m1-3f2a9c0e1b"), Path("runs/m1-7B-1K-m1-0b7d4a55c2")])
    paths.html, paths.markdown, paths.figures       # <first run>/report/report.html, report.md, ...

What it reads is each run's `metrics.json` (written by `m1.evaluation.runner.score_run`): one
summary per grid point with both extraction modes' metrics and the thinking-token use. What it
writes, into `out_dir`:

    report.html                  self-contained: figures embedded, opens from anywhere
    report.md                    tables to paste into a README, linking the figures below
    accuracy_vs_budget.{png,svg} per source, micro and macro: accuracy against log2(budget) with a
                                 least-squares trend and its 95 % band (the paper's figure 1)
    accuracy_vs_wait.{png,svg}   accuracy against the number of "Wait" extensions, when a run has
                                 several at one budget (the paper's figure 3)
    thinking_tokens.{png,svg}    thinking tokens used per grid point, and how often the budget was hit
    answer_settling.{png,svg}    runs with early exit: the share of items whose probe answer already is
                                 the final answer, against thinking tokens (from observe-mode points
                                 where a run has them)

A run with early-exit grid points also gets the tables of `metrics.json`'s `early_exit` section
(`m1.evaluation.early_exit`): each early-exit point against the fixed budget of the same cap, per
source and overall, with the tokens saved and the paired accuracy difference.

Several runs share every figure, one colour and marker per run. The paper's numbers at B = 4096
(`m1.evaluation.paper`) are drawn as black reference markers unless `paper_overlay=False`.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m1 import __version__
from m1.data.errors import DataError
from m1.data.suite import SUITE
from m1.evaluation.early_exit import difference_text
from m1.evaluation.paper import (
    BENCHMARK_OF_SOURCE,
    PAPER_BUDGET,
    PAPER_MODELS,
    PAPER_TOLERANCE,
    paper_accuracy,
    paper_model_for,
)
from m1.io import atomic_write_bytes, atomic_write_text
from m1.scoring import MODES

MICRO, MACRO = "micro", "macro"  # the two averages, drawn and tabled beside the sources
PANEL_TITLES = {MICRO: "micro average (all items)", MACRO: "macro average (mean of sources)"}
RUN_MARKERS = ("o", "s", "^", "D", "v", "<", ">", "h", "p", "8")
VARIANT_LINESTYLES = ("-", "--", ":", "-.")
PAPER_MARKERS = dict(zip(PAPER_MODELS, ("*", "X", "P")))
PAPER_COLOURS = dict(zip(PAPER_MODELS, ("#000000", "#555555", "#999999")))
PAPER_SIZES = dict(zip(PAPER_MODELS, (110, 55, 60)))  # a star needs more area to look as big


@dataclass(frozen=True)
class ReportPaths:
    """Where a report was written."""

    html: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)  # PNG and SVG of every figure drawn
    early_exit: dict[str, Any] = field(default_factory=dict)  # run label → its early-exit comparisons, as tabled


# ---------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Score:
    """One accuracy with its 95 % interval; `n` is items (a source, micro) or sources (macro)."""

    accuracy: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class PointResult:
    """One grid point of a run, in the chosen extraction mode."""

    key: str
    budget: int | None
    extensions: int
    suffix_index: int
    metrics: dict[str, Any]  # ModeMetrics.to_dict() of the chosen mode
    usage: dict[str, Any]
    early_exit_index: int = 0  # the key's _EE number; 0 for a fixed budget
    early_exit: dict[str, Any] | None = None  # the point's early-exit settings
    settling: dict[str, Any] | None = None  # its answer-settling curves (m1.evaluation.early_exit)

    @property
    def order(self) -> tuple[int, int, int, int, int]:
        return (self.budget is not None, self.budget or 0, self.extensions, self.early_exit_index, self.suffix_index)

    @property
    def no_answer_rate(self) -> float:
        return float(self.metrics.get("no_answer_rate", 0.0))

    def score(self, panel: str) -> Score | None:
        """Micro, macro or one source's accuracy; None where there is nothing to measure."""
        if panel in (MICRO, MACRO):
            entry, n = self.metrics[panel], self.metrics[panel]["items" if panel == MICRO else "sources"]
        else:
            entry = next((s for s in self.metrics["sources"] if s["source"] == panel), None)
            n = entry["items"] if entry else 0
        return Score(entry["accuracy"], entry["ci_low"], entry["ci_high"], n) if n else None

    def source_no_answer(self, source: str) -> float | None:
        for entry in self.metrics["sources"]:
            if entry["source"] == source and entry["items"]:
                return float(entry["no_answer_rate"])
        return None


@dataclass(frozen=True)
class RunResult:
    """A finished run's summary: who produced it and every grid point's metrics."""

    path: Path
    label: str
    model: str
    backend: str
    preset: str
    items: int
    points: list[PointResult]
    early_exit: dict[str, Any] | None = None  # metrics.json's early-exit comparisons, when the grid had early exit

    @property
    def thinking_points(self) -> list[PointResult]:
        return [p for p in self.points if p.budget is not None]


def load_run(path: str | Path, mode: str = "strict") -> RunResult:
    """Read a run directory (or its `metrics.json`) written by `m1 eval`."""
    if mode not in MODES:
        raise ValueError(f"unknown scoring mode {mode!r}; valid modes: {', '.join(MODES)}")
    path = Path(path)
    root = path.parent if path.is_file() else path
    summary_file = root / "metrics.json"
    if not summary_file.exists():
        what = "no such run directory" if not root.exists() else "no metrics.json: the run has not finished scoring"
        raise DataError.at(summary_file, "", "", what, "pass a run directory written by `m1 eval`, or run the "
                                                       "same `m1 eval` command again to finish it")
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError.at(summary_file, "", "", f"not valid JSON ({exc})", "re-run `m1 eval` to rewrite it") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("points"), list):
        raise DataError.at(summary_file, "", "points", "missing: this is not a run summary",
                           "pass a run directory written by `m1 eval`")
    points = []
    for number, point in enumerate(summary["points"]):
        if mode not in point or "usage" not in point:
            raise DataError.at(summary_file, f"points[{number}]", mode, "missing",
                               "re-run `m1 eval` with this version of m1 to rescore the run")
        suffix = re.search(r"_S(\d+)$", point["point"])
        early_exit = re.search(r"_EE(\d+)(_S\d+)?$", point["point"])
        points.append(PointResult(point["point"], point.get("budget"), int(point.get("extensions") or 0),
                                  int(suffix.group(1)) if suffix else 0, point[mode], point["usage"],
                                  int(early_exit.group(1)) if early_exit else 0, point.get("early_exit"),
                                  point.get("settling")))
    return RunResult(root, str(summary.get("run") or root.name), str(summary.get("model", "?")),
                     str(summary.get("backend", "?")), str(summary.get("preset", "?")),
                     int(summary.get("items", 0)), sorted(points, key=lambda p: p.order), summary.get("early_exit"))


def load_runs(paths: Iterable[str | Path], mode: str = "strict") -> list[RunResult]:
    """Several runs, each with a label no other run has (figures and tables tell them apart by it)."""
    runs = [load_run(path, mode) for path in paths]
    seen: dict[str, int] = {}
    unique = []
    for run in runs:
        label = run.label
        if any(other is not run and other.label == label for other in runs):
            label = f"{run.path.resolve().parent.name}/{label}"
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} ({seen[label]})"
        unique.append(dataclasses.replace(run, label=label))
    return unique


def ordered_sources(runs: Sequence[RunResult]) -> list[str]:
    """Every source in any run: the suite's order first, then others in the order first seen."""
    found: list[str] = []
    for run in runs:
        for point in run.points:
            for entry in point.metrics["sources"]:
                if entry["source"] not in found:
                    found.append(entry["source"])
    suite_order = {source.name: index for index, source in enumerate(SUITE)}
    return sorted(found, key=lambda name: (suite_order.get(name, len(suite_order)), found.index(name)))


# ---------------------------------------------------------------------------------------- trend


def t_quantile(df: int, p: float = 0.975) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (numerical, accurate to ~1e-6)."""
    import numpy as np

    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t: float) -> float:  # 0.5 + the density's integral from 0 to t, by Simpson's rule
        x = np.linspace(0.0, t, 4001)
        y = np.exp(log_norm - (df + 1) / 2 * np.log1p(x * x / df))
        h = t / 4000
        return 0.5 + h / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum())

    low, high = 0.0, 2.0
    while cdf(high) < p:
        low, high = high, high * 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < p else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class Trend:
    """accuracy ≈ intercept + slope·log2(budget), fitted by least squares over `n` budgets."""

    intercept: float
    slope: float
    n: int
    x_mean: float
    sxx: float
    residual_sd: float
    t: float  # the 97.5 % t quantile with n − 2 degrees of freedom; nan when n = 2

    def predict(self, budgets: Any) -> tuple[Any, Any, Any]:
        """The trend at `budgets` and its 95 % confidence band (low, high; nan without one)."""
        import numpy as np

        x = np.log2(np.asarray(budgets, dtype=float))
        y = self.intercept + self.slope * x
        if math.isnan(self.t):
            return y, np.full_like(y, np.nan), np.full_like(y, np.nan)
        margin = self.t * self.residual_sd * np.sqrt(1 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        return y, y - margin, y + margin


def fit_log2_trend(budgets: Sequence[float], accuracies: Sequence[float]) -> Trend | None:
    """The line through (log2 budget, accuracy); None with fewer than two distinct budgets."""
    import numpy as np

    x = np.log2(np.asarray(budgets, dtype=float))
    y = np.asarray(accuracies, dtype=float)
    if len(np.unique(x)) < 2:
        return None
    design = np.column_stack([np.ones_like(x), x])
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    n = len(x)
    residuals = y - (intercept + slope * x)
    df = n - 2
    residual_sd = float(np.sqrt(residuals @ residuals / df)) if df > 0 else math.nan
    return Trend(float(intercept), float(slope), n, float(x.mean()), float(((x - x.mean()) ** 2).sum()),
                 residual_sd, t_quantile(df) if df > 0 else math.nan)


# ---------------------------------------------------------------------------------------- tables


@dataclass
class TableData:
    """A table both renderers share: header, rows of cell text, right-aligned columns by index."""

    title: str
    header: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)
    rule_before: set[int] = field(default_factory=set)  # row indices that start a new section
    note: str = ""


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _with_ci(score: Score | None) -> str:
    return "—" if score is None else f"{_pct(score.accuracy)} ({_pct(score.ci_low)}–{_pct(score.ci_high)})"


def _budget_text(budget: int | None) -> str:
    return "no thinking" if budget is None else str(budget)


def _short_budget(budget: int) -> str:
    return f"{budget // 1024}K" if budget >= 1024 and budget % 1024 == 0 else str(budget)


def runs_table(runs: Sequence[RunResult]) -> TableData:
    rows = [[run.label, run.model, run.backend, run.preset, str(run.items), str(len(run.points)), str(run.path)]
            for run in runs]
    return TableData("Runs", ["run", "model", "backend", "preset", "items", "grid points", "directory"], rows,
                     numeric={4, 5})


def _rows_per_point(runs: Sequence[RunResult], cells: Any) -> tuple[list[list[str]], set[int], int]:
    """One row per grid point of every run (a run column and section rules when there are several);
    returns the rows, the rule positions and how many leading columns the run label takes."""
    several = len(runs) > 1
    rows: list[list[str]] = []
    rules: set[int] = set()
    for run in runs:
        if several and rows:
            rules.add(len(rows))
        rows += [([run.label] if several else []) + cells(point) for point in run.points]
    return rows, rules, 1 if several else 0


def summary_table(runs: Sequence[RunResult], mode: str) -> TableData:
    """Grid point × micro and macro accuracy, no-answer rate and thinking tokens: the README table."""
    def cells(point: PointResult) -> list[str]:
        usage = point.usage
        return [point.key, _budget_text(point.budget), str(point.extensions), _with_ci(point.score(MICRO)),
                _with_ci(point.score(MACRO)), _pct(point.no_answer_rate),
                f"{usage.get('thinking_tokens_mean', 0.0):.0f}",
                "—" if point.budget is None else _pct(usage.get("budget_hit_rate", 0.0))]

    rows, rules, first = _rows_per_point(runs, cells)
    header = (["run"] if first else []) + ["point", "budget", "Wait", "micro acc % (95 % CI)",
                                           "macro acc % (95 % CI)", "no answer %", "thinking tokens (mean)",
                                           "budget hit %"]
    return TableData(f"Summary ({mode} extraction)", header, rows, numeric=set(range(first + 1, len(header))),
                     rule_before=rules)


def source_table(run: RunResult, sources: Sequence[str], mode: str) -> TableData:
    """One run: a row per source (accuracy and 95 % interval at every grid point), then the averages."""
    header = ["source", "n"] + [point.key for point in run.points]
    rows = []
    for source in sources:
        counts = {s.n for s in (p.score(source) for p in run.points) if s is not None}
        rows.append([source, "/".join(str(c) for c in sorted(counts)) or "0"]
                    + [_with_ci(point.score(source)) for point in run.points])
    rule = len(rows)
    rows.append([PANEL_TITLES[MICRO], str(run.items)] + [_with_ci(p.score(MICRO)) for p in run.points])
    rows.append([PANEL_TITLES[MACRO], str(len(sources))] + [_with_ci(p.score(MACRO)) for p in run.points])
    rows.append(["no answer %", ""] + [_pct(p.no_answer_rate) for p in run.points])
    return TableData(f"Accuracy % by source — {run.label} ({mode} extraction)", header, rows,
                     numeric=set(range(1, len(header))), rule_before={rule},
                     note="Cells: accuracy (95 % interval; Wilson per source and micro, normal for macro). "
                          "An item without an answer counts as wrong.")


def no_answer_table(run: RunResult, sources: Sequence[str], mode: str) -> TableData:
    header = ["source"] + [point.key for point in run.points]
    rows = []
    for source in sources:
        rates = [point.source_no_answer(source) for point in run.points]
        rows.append([source] + ["—" if rate is None else _pct(rate) for rate in rates])
    rows.append(["all items"] + [_pct(p.no_answer_rate) for p in run.points])
    return TableData(f"No-answer rate % by source — {run.label} ({mode} extraction)", header, rows,
                     numeric=set(range(1, len(header))), rule_before={len(sources)})


def usage_table(runs: Sequence[RunResult]) -> TableData:
    def cells(point: PointResult) -> list[str]:
        usage = point.usage
        ends = ", ".join(f"{end} {count}" for end, count in (usage.get("thinking_end") or {}).items())
        return [point.key, _budget_text(point.budget), f"{usage.get('thinking_tokens_mean', 0.0):.0f}",
                f"{usage.get('thinking_tokens_median', 0.0):.0f}", str(usage.get("thinking_tokens_max", 0)),
                "—" if point.budget is None else _pct(usage.get("budget_hit_rate", 0.0)),
                f"{usage.get('extensions_used_mean', 0.0):.2f}", ends or "—", str(usage.get("errors", 0))]

    rows, rules, first = _rows_per_point(runs, cells)
    header = (["run"] if first else []) + ["point", "budget", "thinking tokens mean", "median", "max",
                                           "budget hit %", "Wait used (mean)", "thinking ended by", "errors"]
    return TableData("Thinking tokens", header, rows, numeric={first + i for i in (2, 3, 4, 5, 6, 8)},
                     rule_before=rules)


def paper_point(run: RunResult) -> PointResult | None:
    """The run's point comparable with the paper: B = 4096, no extensions, the first prompt suffix."""
    return next((p for p in run.points if p.budget == PAPER_BUDGET and p.extensions == 0 and p.suffix_index == 0
                 and p.early_exit_index == 0), None)


def paper_table(runs: Sequence[RunResult], sources: Sequence[str], mode: str) -> TableData | None:
    """Our accuracy at B = 4096 beside the paper's, per source the paper reports; None if no run has it."""
    compared = [(run, point) for run in runs if (point := paper_point(run)) is not None]
    shared = [source for source in sources if source in BENCHMARK_OF_SOURCE]
    if not compared or not shared:
        return None
    matched = {run.label: paper_model_for(run.model) for run, _ in compared}
    header = ["source", "paper's name"] + [f"paper {model}" for model in PAPER_MODELS]
    header += [f"{run.label} (ours)" for run, _ in compared]
    header += [f"{run.label} − paper {matched[run.label]}" for run, _ in compared if matched[run.label]]
    rows = []
    for source in shared:
        paper = paper_accuracy(source)
        ours = [point.score(source) for _, point in compared]
        row = [source, BENCHMARK_OF_SOURCE[source]] + [f"{paper[model]:.0f}" for model in PAPER_MODELS]
        row += [_with_ci(score) for score in ours]
        for (run, _), score in zip(compared, ours):
            if matched[run.label]:
                row.append("—" if score is None else f"{100 * score.accuracy - paper[matched[run.label]]:+.1f}")
        rows.append(row)
    note = (f"The paper's numbers are read off its figure at B = {PAPER_BUDGET} (±{PAPER_TOLERANCE:.0f} point) and "
            "were scored with its own grader, which guesses when a reply has no answer")
    note += "." if mode == "reference" else "; the reference extraction mode compares like with like."
    return TableData(f"Compared with the paper at B = {PAPER_BUDGET}, no extensions ({mode} extraction)", header, rows,
                     numeric=set(range(2, len(header))), note=note)


def _early_exit_rule(settings: dict[str, Any] | None) -> str:
    """An early-exit setting in a few words, e.g. "confidence ≥ 0.9, every 64, transitions (observe)"."""
    if not settings:
        return "—"
    method = settings.get("method")
    rule = f"confidence ≥ {settings.get('threshold'):g}" if method == "confidence" else f"{settings.get('agree')} agree"
    when = [f"every {settings['every']}"] if settings.get("every") else []
    if settings.get("transitions") is None or settings.get("transitions"):  # None: the default transitions
        when.append("transitions")
    return ", ".join([rule, *when]) + (" (observe)" if settings.get("observe") else "")


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _p_value(entry: dict[str, Any] | None) -> str:
    return "—" if entry is None else f"{entry['p_value']:.3g}"


def _comparison_header(mode: str) -> list[str]:
    return ["n", "thinking tokens fixed", "thinking tokens early exit", "tokens saved %", "exited early %",
            "probe tokens (mean)", f"acc % fixed → early exit ({mode})", "Δ strict, points (95 % CI)", "p strict",
            "Δ reference, points (95 % CI)", "p reference"]


def _comparison_cells(group: dict[str, Any], mode: str) -> list[str]:
    chosen = group.get(mode)
    accuracy = "—" if chosen is None else f"{_pct(chosen['accuracy_b'])} → {_pct(chosen['accuracy_a'])}"
    rate = group.get("early_exit_rate")
    return [str(group["items"]), _number(group["thinking_tokens_fixed"]), _number(group["thinking_tokens_early_exit"]),
            _number(group["tokens_saved_pct"], 1), "—" if rate is None else _pct(rate),
            _number(group.get("probe_tokens_mean")), accuracy, difference_text(group.get("strict")),
            _p_value(group.get("strict")), difference_text(group.get("reference")), _p_value(group.get("reference"))]


def _compared(run: RunResult) -> list[dict[str, Any]]:
    """The run's early-exit points that have a fixed-budget point to be compared with."""
    return [c for c in (run.early_exit or {}).get("comparisons", []) if c.get("fixed")]


def early_exit_tables(runs: Sequence[RunResult], mode: str) -> list[TableData]:
    """Early exit against the fixed budget of the same cap: all items (every run), then by source
    (one table per run); no tables when no run had early exit."""
    if not any(run.early_exit for run in runs):
        return []
    several = len(runs) > 1
    head = (["run"] if several else []) + ["point", "fixed point", "early exit"]
    overall = [([run.label] if several else []) + [c["point"], c["fixed"], _early_exit_rule(c["early_exit"])]
               + _comparison_cells(c["overall"], mode) for run in runs for c in _compared(run)]
    unpaired = [c["point"] for run in runs for c in (run.early_exit or {}).get("comparisons", []) if not c.get("fixed")]
    method = next(run.early_exit.get("method", "") for run in runs if run.early_exit)
    note = ("Same items in both arms. Δ: accuracy with early exit minus accuracy at the fixed budget, in points; "
            "tokens saved: 1 − mean thinking tokens with early exit / without (probe tokens are counted apart). "
            f"Statistics: {method}.")
    if unpaired:
        note += f" Not compared (the grid has no fixed point of the same cap): {', '.join(unpaired)}."
    tables = [TableData(f"Early exit versus fixed budget, all items ({mode} accuracy shown)", head
                        + _comparison_header(mode), overall, numeric=set(range(len(head), len(head) + 11)),
                        note=note)]
    for run in runs:
        rows: list[list[str]] = []
        rules: set[int] = set()
        for comparison in _compared(run):
            if rows:
                rules.add(len(rows))
            groups = comparison["sources"] + [comparison["overall"] | {"source": "all items"}]
            rows += [[comparison["point"], group["source"]] + _comparison_cells(group, mode) for group in groups]
        if rows:
            tables.append(TableData(f"Early exit versus fixed budget by source — {run.label}",
                                    ["point", "source"] + _comparison_header(mode), rows,
                                    numeric=set(range(2, 13)), rule_before=rules))
    return tables


def render_markdown_table(table: TableData) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in table.header) + " |",
             "|" + "|".join("---:" if i in table.numeric else "---" for i in range(len(table.header))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_html_table(table: TableData) -> str:
    def cells(row: Sequence[str], tag: str) -> str:
        return "".join(f'<{tag}{" class=num" if i in table.numeric else ""}>{html.escape(c)}</{tag}>'
                       for i, c in enumerate(row))

    body = "".join(f'<tr{" class=rule" if i in table.rule_before else ""}>{cells(row, "td")}</tr>'
                   for i, row in enumerate(table.rows))
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (f"<h3>{html.escape(table.title)}</h3><div class=scroll><table><thead><tr>{cells(table.header, 'th')}"
            f"</tr></thead><tbody>{body}</tbody></table></div>{note}")


# ---------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Series:
    """Points of one run drawn as one line: a prompt suffix and an early-exit setting (or none), and
    a budget or a Wait count held fixed."""

    run_index: int
    variant: int  # 0 for the run's main line; others get another line style
    label: str
    points: list[PointResult]


def _variant_tag(early_exit_index: int, suffix_index: int) -> str:
    return (f" EE{early_exit_index}" if early_exit_index else "") + (f" S{suffix_index}" if suffix_index else "")


def budget_series(runs: Sequence[RunResult]) -> tuple[list[Series], list[Series]]:
    """Lines over the budget (at each run's smallest Wait count), one per prompt suffix and early-exit
    setting (early exit's caps beside the fixed budgets), and flat lines of no-thinking points."""
    lines, flat = [], []
    for index, run in enumerate(runs):
        variants = sorted({(p.suffix_index, p.early_exit_index) for p in run.points})
        for variant, (suffix, early_exit) in enumerate(variants):
            thinking = [p for p in run.thinking_points if (p.suffix_index, p.early_exit_index) == (suffix, early_exit)]
            tag = _variant_tag(early_exit, suffix)
            if thinking:
                fewest = min(p.extensions for p in thinking)
                label = run.label + tag + (f" (Wait={fewest})" if fewest else "")
                lines.append(Series(index, variant, label, [p for p in thinking if p.extensions == fewest]))
            for point in run.points:
                if point.budget is None and (point.suffix_index, point.early_exit_index) == (suffix, early_exit):
                    flat.append(Series(index, variant, f"{run.label}{tag}: no thinking", [point]))
    return lines, flat


def wait_series(runs: Sequence[RunResult]) -> list[Series]:
    """One line per run, suffix, early-exit setting and budget evaluated at two or more Wait counts."""
    found = []
    for index, run in enumerate(runs):
        groups: dict[tuple[int, int, int], list[PointResult]] = {}
        for point in run.thinking_points:
            groups.setdefault((point.budget, point.early_exit_index, point.suffix_index), []).append(point)
        for variant, ((budget, early_exit, suffix), points) in enumerate(sorted(groups.items())):
            if len({p.extensions for p in points}) >= 2:
                label = f"{run.label}{_variant_tag(early_exit, suffix)} B={_short_budget(budget)}"
                found.append(Series(index, variant, label, sorted(points, key=lambda p: p.extensions)))
    return found


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("m1 report draws its figures with matplotlib: pip install matplotlib") from None
    return matplotlib


def _colours() -> list[Any]:
    return list(_matplotlib().colormaps["tab10"].colors)


def _panel_grid(panels: Sequence[str], width: float = 3.3, height: float = 2.7) -> tuple[Any, list]:
    from matplotlib.figure import Figure

    # Four panels a row, or three when that leaves fewer empty slots (5 panels: 3 + 2, not 4 + 1).
    columns = len(panels) if len(panels) <= 4 else min((4, 3), key=lambda c: (-len(panels) % c, -c))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(width * columns, height * rows + 0.9), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    return figure, axes[: len(panels)]


def _panel_title(runs: Sequence[RunResult], panel: str) -> str:
    if panel in PANEL_TITLES:
        return PANEL_TITLES[panel]
    counts = {s.n for run in runs for p in run.points if (s := p.score(panel)) is not None}
    return f"{panel} (n={counts.pop()})" if len(counts) == 1 else panel


def _legend(figure: Any, axes: Sequence[Any]) -> None:
    handles: dict[str, Any] = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    # The runs' own lines first, then runs without thinking, then the paper's markers.
    labels = sorted(handles, key=lambda label: (label.startswith("paper "), label.endswith(": no thinking")))
    if labels:
        figure.legend([handles[label] for label in labels], labels, loc="outside lower center",
                      ncols=min(4, len(labels)), fontsize="small", frameon=False)


def _clamp_percent_axis(axis: Any) -> None:
    low, high = axis.get_ylim()
    axis.set_ylim(max(low, -2.0), min(high, 102.0))


def _no_data(axis: Any) -> None:
    axis.text(0.5, 0.5, "no items", transform=axis.transAxes, ha="center", va="center", color="grey")


def accuracy_vs_budget_figure(runs: Sequence[RunResult], panels: Sequence[str], mode: str,
                              paper_overlay: bool) -> Any | None:
    """Figure 1 of the paper: accuracy against log2(budget), a trend and its 95 % band, per panel."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lines, flat = budget_series(runs)
    if not lines:
        return None
    colours = _colours()
    budgets = sorted({p.budget for series in lines for p in series.points})
    overlay = paper_overlay and any(paper_accuracy(panel) for panel in panels)
    ticks = sorted(set(budgets) | ({PAPER_BUDGET} if overlay else set()))
    figure, axes = _panel_grid(panels)
    for axis, panel in zip(axes, panels):
        drawn = False
        for number, series in enumerate(lines):
            colour = colours[series.run_index % len(colours)]
            scored = [(p.budget, s) for p in series.points if (s := p.score(panel)) is not None]
            if not scored:
                continue
            drawn = True
            x = np.array([b for b, _ in scored], dtype=float)
            y = np.array([100 * s.accuracy for _, s in scored])
            error = _error_bars(scored)
            # Runs at the same budgets would hide each other's interval bars; nudge them apart a little.
            nudge = 2 ** (0.06 * (number - (len(lines) - 1) / 2))
            # Early exit's caps share the run's colour and marker, drawn hollow beside its fixed budgets.
            hollow = {"markerfacecolor": "white"} if series.points[0].early_exit_index else {}
            axis.errorbar(x * nudge, y, yerr=error, fmt=RUN_MARKERS[series.run_index % len(RUN_MARKERS)],
                          color=colour, markersize=5, capsize=2, elinewidth=0.8, alpha=0.9, label=series.label,
                          **hollow)
            trend = fit_log2_trend(x, y)
            if trend is not None:
                grid = np.geomspace(x.min(), x.max(), 60)
                # A straight line in log2(budget) leaves [0, 100] % near a ceiling or a floor:
                # line and band are cut at the axis's limits, never drawn where no accuracy can be.
                centre, low, high = (np.clip(values, 0, 100) for values in trend.predict(grid))
                style = VARIANT_LINESTYLES[series.variant % len(VARIANT_LINESTYLES)]
                axis.plot(grid, centre, style, color=colour, linewidth=1.5)
                if not np.isnan(low).all():
                    axis.fill_between(grid, low, high, color=colour, alpha=0.15, linewidth=0)
        for series in flat:
            score = series.points[0].score(panel)
            if score is not None:
                drawn = True
                axis.axhline(100 * score.accuracy, color=colours[series.run_index % len(colours)],
                             linestyle=(0, (1, 2)), linewidth=1.2, label=series.label)
        if paper_overlay:
            for offset, (model, value) in zip((-0.15, 0.0, 0.15), paper_accuracy(panel).items()):
                drawn = True
                axis.scatter([PAPER_BUDGET * 2 ** offset], [value], marker=PAPER_MARKERS[model],
                             color=PAPER_COLOURS[model], s=PAPER_SIZES[model], zorder=5, edgecolors="white",
                             linewidths=0.5,
                             label=f"paper {model} (B={PAPER_BUDGET})")
        if not drawn:
            _no_data(axis)
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_locator(FixedLocator(ticks))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _short_budget(round(value))))
        axis.xaxis.set_minor_locator(NullLocator())
        axis.set_xlim(ticks[0] / 1.4, ticks[-1] * 1.4)
        axis.set_title(_panel_title(runs, panel), fontsize="medium")
        axis.set_xlabel("thinking budget (tokens)", fontsize="small")
        axis.set_ylabel("accuracy %", fontsize="small")
        axis.grid(alpha=0.3)
        _clamp_percent_axis(axis)
    figure.suptitle(f"Accuracy vs thinking budget ({mode} extraction; bars: 95 % CI; line: trend in log2 budget "
                    "with 95 % band)", fontsize="medium")
    _legend(figure, axes)
    return figure


def accuracy_vs_wait_figure(runs: Sequence[RunResult], panels: Sequence[str], mode: str) -> Any | None:
    """Figure 3 of the paper: accuracy against the number of "Wait" extensions at a fixed budget."""
    import numpy as np

    lines = wait_series(runs)
    if not lines:
        return None
    colours = _colours()
    counts = sorted({p.extensions for series in lines for p in series.points})
    figure, axes = _panel_grid(panels)
    for axis, panel in zip(axes, panels):
        drawn = False
        for number, series in enumerate(lines):
            scored = [(p.extensions, s) for p in series.points if (s := p.score(panel)) is not None]
            if not scored:
                continue
            drawn = True
            x = np.array([k for k, _ in scored], dtype=float) + 0.08 * (number - (len(lines) - 1) / 2)
            y = np.array([100 * s.accuracy for _, s in scored])
            error = _error_bars(scored)
            # Colour follows the line (a run's budgets differ in colour), the marker follows the run.
            axis.errorbar(x, y, yerr=error, color=colours[number % len(colours)],
                          marker=RUN_MARKERS[series.run_index % len(RUN_MARKERS)], markersize=5, capsize=2,
                          elinewidth=0.8, linewidth=1.3, label=series.label)
        if not drawn:
            _no_data(axis)
        axis.set_xticks(counts)
        axis.set_title(_panel_title(runs, panel), fontsize="medium")
        axis.set_xlabel('"Wait" extensions', fontsize="small")
        axis.set_ylabel("accuracy %", fontsize="small")
        axis.grid(alpha=0.3)
        _clamp_percent_axis(axis)
    figure.suptitle(f'Accuracy vs number of "Wait" extensions ({mode} extraction; bars: 95 % CI)', fontsize="medium")
    _legend(figure, axes)
    return figure


def thinking_tokens_figure(runs: Sequence[RunResult]) -> Any | None:
    """Thinking tokens used at each grid point (box plots, budget marked) and the budget-hit rate."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    keyed = {p.key: p for run in runs for p in run.thinking_points}
    if not keyed:
        return None
    categories = sorted(keyed, key=lambda key: keyed[key].order)
    colours = _colours()
    thinking = [(index, run) for index, run in enumerate(runs) if run.thinking_points]  # colour stays the run's
    slot = 0.8 / len(thinking)
    width = min(20.0, max(7.0, 0.35 + len(categories) * (0.5 + 0.35 * len(thinking))))
    figure = Figure(figsize=(width, 6.8), layout="constrained")
    tokens_axis, hits_axis = figure.subplots(2, 1, sharex=True, height_ratios=(2.2, 1))
    handles = []
    for place, (index, run) in enumerate(thinking):
        colour = colours[index % len(colours)]
        by_key = {p.key: p for p in run.thinking_points}
        positions = [c + (place - (len(thinking) - 1) / 2) * slot for c, key in enumerate(categories) if key in by_key]
        present = [by_key[key] for key in categories if key in by_key]
        # A log axis cannot show 0 tokens; such samples are drawn at 1.
        values = [[max(1, t) for t in p.usage.get("thinking_tokens") or [0]] for p in present]
        boxes = tokens_axis.boxplot(values, positions=positions, widths=slot * 0.85, patch_artist=True,
                                    manage_ticks=False, flierprops={"markersize": 2, "markeredgecolor": colour},
                                    medianprops={"color": "black"})
        for box in boxes["boxes"]:
            box.set(facecolor=colour, alpha=0.55, edgecolor=colour)
        rates = [100 * p.usage.get("budget_hit_rate", 0.0) for p in present]
        bars = hits_axis.bar(positions, rates, width=slot * 0.85, color=colour, alpha=0.8)
        if len(categories) * len(thinking) <= 24:
            hits_axis.bar_label(bars, fmt="%.0f", fontsize="x-small", padding=1)
        handles.append(Patch(facecolor=colour, alpha=0.7, label=run.label))
    for c, key in enumerate(categories):
        tokens_axis.hlines(keyed[key].budget, c - 0.45, c + 0.45, colors="black", linestyles="--", linewidth=1,
                           label="thinking budget" if c == 0 else None)
    tokens_axis.set_yscale("log", base=2)
    tokens_axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _short_budget(round(value))))
    tokens_axis.set_ylabel("thinking tokens used")
    tokens_axis.set_title("Thinking tokens per item (box: quartiles, whiskers 1.5 IQR; dashed: the budget)",
                          fontsize="medium")
    tokens_axis.grid(axis="y", alpha=0.3)
    hits_axis.set_ylim(0, 112)
    hits_axis.set_ylabel("budget hit %")
    hits_axis.set_title("Items whose thinking was cut off by the budget", fontsize="medium")
    hits_axis.grid(axis="y", alpha=0.3)
    hits_axis.set_xticks(range(len(categories)))
    crowded = len(categories) > 6 or len(categories) * max(map(len, categories)) > 60  # labels would touch
    hits_axis.set_xticklabels(categories, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    hits_axis.set_xlabel("grid point")
    budget_handle = tokens_axis.get_legend_handles_labels()[0]
    figure.legend(handles + budget_handle, [h.get_label() for h in handles] + ["thinking budget"] * len(budget_handle),
                  loc="outside lower center", ncols=min(4, len(handles) + 1), fontsize="small", frameon=False)
    return figure


def settling_points(run: RunResult) -> list[PointResult]:
    """The points whose probe trajectories the settling figure draws: a run's observe-mode points,
    which probe all of the thinking, where it has them; otherwise its exiting points."""
    probed = [p for p in run.points if p.settling]
    return [p for p in probed if p.settling.get("observe")] or probed


def answer_settling_figure(runs: Sequence[RunResult], panels: Sequence[str], mode: str) -> Any | None:
    """Per panel: the share of items whose latest probe already gave the final answer, against thinking tokens."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lines = [(index, run, point) for index, run in enumerate(runs) for point in settling_points(run)]
    if not lines:
        return None
    colours = _colours()
    steps = [t for _, _, point in lines for t in point.settling["thinking_tokens"] if t > 0]
    ticks = [2 ** k for k in range(math.ceil(math.log2(min(steps))), math.floor(math.log2(max(steps))) + 1)] if steps else []
    ticks = ticks[:: max(1, math.ceil(len(ticks) / 8))]  # at most 8 labels, every other power when there are more
    figure, axes = _panel_grid(panels)
    for axis, panel in zip(axes, panels):
        drawn = False
        for number, (index, run, point) in enumerate(lines):
            curves = point.settling
            shares = curves[mode]["overall"] if panel == MICRO else curves[mode]["sources"].get(panel)
            x = np.asarray(curves["thinking_tokens"], dtype=float)
            if not shares or not (x > 0).any():
                continue
            drawn = True
            keep = x > 0  # a log axis has no 0; the first step after it shows the same items
            label = (f"{run.label} " if len(runs) > 1 else "") + f"{point.key}: {_early_exit_rule(point.early_exit)}"
            axis.step(x[keep], 100 * np.asarray(shares, dtype=float)[keep], where="post", linewidth=1.4,
                      color=colours[number % len(colours)],
                      linestyle=VARIANT_LINESTYLES[index % len(VARIANT_LINESTYLES)], label=label)
        if not drawn:
            _no_data(axis)
        axis.set_xscale("log", base=2)
        if ticks:
            axis.xaxis.set_major_locator(FixedLocator(ticks))
            axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _short_budget(round(value))))
            axis.xaxis.set_minor_locator(NullLocator())
        axis.set_title("all items" if panel == MICRO else panel, fontsize="medium")
        axis.set_xlabel("thinking tokens", fontsize="small")
        axis.set_ylabel("settled %", fontsize="small")
        axis.set_ylim(-2, 102)
        axis.grid(alpha=0.3)
    figure.suptitle(f"Answer settling ({mode} extraction): items whose latest probe already gave the final answer",
                    fontsize="medium")
    _legend(figure, axes)
    return figure


def save_figure(figure: Any, directory: Path, stem: str) -> tuple[list[Path], bytes]:
    """Write `stem`.png and `stem`.svg; returns the paths and the PNG bytes (for embedding)."""
    matplotlib = _matplotlib()
    paths, png = [], b""
    with matplotlib.rc_context({"svg.hashsalt": "m1-report"}):  # the same figure gives the same SVG
        for kind in ("png", "svg"):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=kind, dpi=110, metadata={"Date": None} if kind == "svg" else None)
            data = buffer.getvalue()
            paths.append(atomic_write_bytes(directory / f"{stem}.{kind}", data))
            png = data if kind == "png" else png
    return paths, png


# ---------------------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class DrawnFigure:
    stem: str
    title: str
    caption: str
    png: bytes


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em;margin:1.4em 0 .4em}.meta,.note,figcaption{color:#555;font-size:.9em}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.88em}
th,td{border:1px solid #ddd;padding:.25em .55em;white-space:nowrap;text-align:left}
th{background:#f3f3f3;white-space:normal;vertical-align:bottom}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.rule td{border-top:2px solid #999}tbody tr:nth-child(even){background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
"""

# Records script errors and failed resources, and whether every image decoded, as attributes on
# <body>; a headless browser's `--dump-dom` then shows them (the report's browser test reads them).
_CHECK_SCRIPT = """
(function () {
  var errors = [];
  function show() {
    if (document.body) { document.body.setAttribute("data-errors", JSON.stringify(errors)); }
  }
  window.addEventListener("error", function (event) {
    var target = event.target;
    errors.push(target && target !== window && target.tagName
      ? "failed to load <" + target.tagName.toLowerCase() + ">"
      : String(event.message || "error"));
    show();
  }, true);
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, " "));
    show();
    return consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var ok = images.every(function (img) { return img.complete && img.naturalWidth > 0; });
    document.body.setAttribute("data-images", String(images.length));
    document.body.setAttribute("data-images-ok", ok ? "true" : "false");
    show();
  });
})();
"""


def render_html(runs: Sequence[RunResult], mode: str, tables: dict[str, Any], figures: Sequence[DrawnFigure],
                notes: Sequence[str]) -> str:
    title = html.escape(", ".join(run.label for run in runs))
    generated = html.escape(f"{time.strftime('%Y-%m-%d %H:%M')} by m1 {__version__}")
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>m1 report: {title}</title><style>{_STYLE}</style><script>{_CHECK_SCRIPT}</script></head><body>",
        "<h1>m1 evaluation report</h1>",
        f"<p class=meta>{len(runs)} run(s), {html.escape(mode)} extraction; generated {generated}.</p>",
    ]
    parts.append(render_html_table(tables["runs"]))
    parts.append("<h2>Summary</h2>" + render_html_table(tables["summary"]))
    for note in notes:
        parts.append(f"<p class=note>{html.escape(note)}</p>")
    for drawn in figures:
        data = base64.b64encode(drawn.png).decode("ascii")
        parts.append(f"<h2>{html.escape(drawn.title)}</h2><figure><img src='data:image/png;base64,{data}' "
                     f"alt='{html.escape(drawn.title, quote=True)}'><figcaption>{html.escape(drawn.caption)} "
                     f"Files: <a href='{drawn.stem}.svg'>{drawn.stem}.svg</a>, "
                     f"<a href='{drawn.stem}.png'>{drawn.stem}.png</a>.</figcaption></figure>")
        if drawn.stem == "thinking_tokens":
            parts.append(render_html_table(tables["usage"]))
        if drawn.stem == "answer_settling":
            parts += [render_html_table(table) for table in tables["early_exit"]]
    if not any(d.stem == "thinking_tokens" for d in figures):
        parts.append("<h2>Thinking tokens</h2>" + render_html_table(tables["usage"]))
    if tables["early_exit"] and not any(d.stem == "answer_settling" for d in figures):
        parts.append("<h2>Early exit</h2>")
        parts += [render_html_table(table) for table in tables["early_exit"]]
    parts.append("<h2>Accuracy by source</h2>")
    parts += [render_html_table(table) for table in tables["sources"]]
    parts.append("<h2>No-answer rate by source</h2>")
    parts += [render_html_table(table) for table in tables["no_answer"]]
    if tables["paper"] is not None:
        parts.append("<h2>Compared with the paper</h2>" + render_html_table(tables["paper"]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_markdown(runs: Sequence[RunResult], mode: str, tables: dict[str, Any], figures: Sequence[DrawnFigure],
                    notes: Sequence[str]) -> str:
    listed = ", ".join(f"`{run.label}` ({run.model})" for run in runs)
    lines = ["# m1 evaluation report", "",
             f"{len(runs)} run(s): {listed}; {mode} extraction. Accuracy in % with its 95 % interval.", ""]

    def add(table: TableData, level: str = "##") -> None:
        lines.extend([f"{level} {table.title}", "", render_markdown_table(table), ""])
        if table.note:
            lines.extend([table.note, ""])

    add(tables["summary"])
    lines.extend(f"{note}\n" for note in notes)
    if figures:
        lines.extend(["## Figures", ""])
        for drawn in figures:
            lines.extend([f"### {drawn.title}", "", f"![{drawn.title}]({drawn.stem}.png)", "",
                          f"{drawn.caption} ([SVG]({drawn.stem}.svg))", ""])
    for table in tables["sources"] + tables["no_answer"]:
        add(table)
    add(tables["usage"])
    for table in tables["early_exit"]:
        add(table)
    if tables["paper"] is not None:
        add(tables["paper"])
    return "\n".join(lines).rstrip() + "\n"


def write_report(runs: list[Path], out_dir: Path | None = None, *, paper_overlay: bool = True,
                 mode: str = "strict") -> ReportPaths:
    """Write report.html (self-contained), report.md and the figures for finished `m1 eval` runs.

    `out_dir` defaults to `<first run>/report/`. `mode` is the extraction mode whose metrics are
    shown ("strict" or "reference"); `paper_overlay` adds the paper's numbers at B = 4096.
    """
    if not runs:
        raise ValueError("write_report needs at least one run directory")
    results = load_runs(runs, mode)
    out_dir = Path(out_dir) if out_dir is not None else results[0].path / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = ordered_sources(results)
    panels = sources + [MICRO, MACRO]

    tables: dict[str, Any] = {
        "runs": runs_table(results),
        "summary": summary_table(results, mode),
        "usage": usage_table(results),
        "sources": [source_table(run, sources, mode) for run in results],
        "no_answer": [no_answer_table(run, sources, mode) for run in results],
        "paper": paper_table(results, sources, mode) if paper_overlay else None,
        "early_exit": early_exit_tables(results, mode),
    }
    notes = []
    if paper_overlay and tables["paper"] is None:
        notes.append(f"No run has a point at B = {PAPER_BUDGET} without extensions on a source the paper reports, "
                     "so there is no table comparing with the paper.")

    figure_specs = [
        ("accuracy_vs_budget", "Accuracy versus thinking budget",
         accuracy_vs_budget_figure(results, panels, mode, paper_overlay),
         "One panel per source, then the micro and macro averages. Markers: accuracy at each budget with its 95 % "
         "interval; line and band: least-squares trend of accuracy in log2(budget) and its 95 % confidence band "
         "(drawn from three budgets on). Dotted horizontal lines: runs without thinking."
         + (f" Black markers: the paper's numbers at B = {PAPER_BUDGET}." if paper_overlay else "")),
        ("accuracy_vs_wait", 'Accuracy versus "Wait" extensions',
         accuracy_vs_wait_figure(results, panels, mode),
         ('Accuracy at a fixed thinking budget as the number of "Wait" extensions grows (budget forcing), with '
          "95 % intervals; one line per run and budget.")),
        ("thinking_tokens", "Thinking tokens used", thinking_tokens_figure(results),
         ("Distribution of thinking tokens per item at each grid point (log2 axis; the dashed line is the budget), "
          "and the share of items whose thinking hit the budget.")),
        ("answer_settling", "Answer settling under early exit",
         answer_settling_figure(results, sources + [MICRO], mode),
         ("At each number of thinking tokens, the share of items whose latest probe already gave the letter the "
          "reply was finally graded as; an item whose thinking has ended by then counts as settled. Drawn from "
          "observe-mode points (they probe all of the thinking without exiting) where a run has them, otherwise "
          "from the early-exit points, whose probing stops when they exit. One panel per source, then all items; "
          "the early-exit tables follow.")),
    ]
    figures: list[DrawnFigure] = []
    figure_paths: list[Path] = []
    for stem, title, figure, caption in figure_specs:
        if figure is None:
            continue
        paths, png = save_figure(figure, out_dir, stem)
        figure_paths += paths
        figures.append(DrawnFigure(stem, title, caption, png))
    if not any(d.stem == "accuracy_vs_budget" for d in figures):
        notes.append("No run has a thinking budget, so there is no accuracy-versus-budget figure.")

    html_path = atomic_write_text(out_dir / "report.html", render_html(results, mode, tables, figures, notes))
    markdown_path = atomic_write_text(out_dir / "report.md", render_markdown(results, mode, tables, figures, notes))
    return ReportPaths(html_path, markdown_path, figure_paths,
                       {run.label: run.early_exit for run in results if run.early_exit})


def _error_bars(scored: list) -> Any:
    """Distances from each accuracy to its interval ends, in points; never negative (a Wilson
    bound can sit a rounding error past an accuracy of exactly 0 or 1)."""
    import numpy as np

    low = [100 * (s.accuracy - s.ci_low) for _, s in scored]
    high = [100 * (s.ci_high - s.accuracy) for _, s in scored]
    return np.clip(np.array([low, high]), 0.0, None)
