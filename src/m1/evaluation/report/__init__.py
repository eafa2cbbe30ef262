"""`m1 report RUN [RUN ...]`: turn finished `m1 eval` runs into an HTML report, a Markdown summary
and figures (PNG and SVG) that show how accuracy moves with the thinking budget.

    from m1.evaluation.report import write_report
    paths = write_report([Path("runs/m1-7B-23K-m1-3f2a9c0e1b"), Path("runs/m1-7B-1K-m1-0b7d4a55c2")])
    paths.html, paths.markdown, paths.figures       # <first run>/report/report.html, report.md, ...

What it reads is each run's `metrics.json` (`m1.evaluation.summary.RunSummary`, written by
`m1.evaluation.results.score_run`): one summary per grid point with both extraction modes' metrics
and the thinking-token use. What it writes, into `out_dir`:

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

    accuracy_vs_compute.{png,svg} every policy's accuracy against its tokens per item, the Pareto
                                 frontier drawn, a panel per extraction mode, the chosen one first
                                 (runs whose summary has `policies`)
    reliability.{png,svg}        a reliability diagram per grid point whose answer probability was read
    selective_accuracy.{png,svg} accuracy of the answered items against coverage, the target marked

A run with early-exit grid points also gets the tables of `metrics.json`'s `early_exit` section
(`m1.evaluation.early_exit`): each early-exit point against the fixed budget of the same cap, per
source and overall, with the tokens saved and the paired accuracy difference. Every report has the
budget audit (`m1.evaluation.audit`): per grid point of every run, whatever its backend, the thinking
tokens used against the budget, what overshot, empty, cut and unclosed answers, and a verdict (a run
scored before the audit is audited from its predictions). The sections of issue 14 appear where
the summary has their data: accuracy against compute (every policy, the frontier, the cheapest
policy within 1 point of the best per source, in both extraction modes), answer flips between
neighbouring grid points (counts with the exact McNemar p, per source and domain, and the first
50 flipped items of each pair), calibration (ECE and the confidence threshold that reaches
`target_accuracy`, by default `m1.evaluation.calibration.TARGET`, 0.9; `checked_target` refuses
one outside (0, 1]), and accuracy and tokens by MeSH domain.

Several runs share every figure, one colour and marker per run; only runs that answered the same
items (their items.jsonl) rank on one frontier, so runs on other items get a frontier of their own.
The paper's numbers at B = 4096 (`m1.evaluation.paper`) are drawn as black reference markers unless
`paper_overlay=False`.

One module per job: `load` (runs), `stats` (the trend fit), `choose` (frontier, cheapest, target
threshold), `text` (cell formats), `tables`, `figures`, `document` (figures and
sections as the documents hold them), `html` (Jinja2 templates in `templates/`), `markdown`, and
`write` (the whole report).
"""

from m1.evaluation.report.figures import (
    accuracy_vs_budget_figure,
    answer_settling_figure,
    budget_series,
    settling_points,
)
from m1.evaluation.report.load import MACRO, MICRO, PointResult, RunResult, Score, load_run, load_runs
from m1.evaluation.report.markdown import render_markdown_table
from m1.evaluation.report.stats import Trend, fit_log2_trend, t_quantile
from m1.evaluation.report.tables import TableData, summary_table
from m1.evaluation.calibration import checked_target
from m1.evaluation.report.write import ReportPaths, write_report

__all__ = [
    "MACRO", "MICRO", "PointResult", "ReportPaths", "RunResult", "Score", "TableData", "Trend",
    "accuracy_vs_budget_figure", "answer_settling_figure", "budget_series", "checked_target", "fit_log2_trend",
    "load_run", "load_runs", "render_markdown_table", "settling_points", "summary_table", "t_quantile",
    "write_report",
]
