"""`write_report`: read the runs, build the tables, draw and save the figures, render report.html
and report.md into the output folder.

    paths = write_report([Path("runs/m1-7B-23K-m1-3f2a9c0e1b")], mode="strict")
    paths.html, paths.markdown, paths.figures
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m1.evaluation.calibration import TARGET, checked_target
from m1.evaluation.paper import PAPER_BUDGET
from m1.evaluation.report.document import DrawnFigure, Section
from m1.evaluation.report.figures import (
    accuracy_vs_budget_figure,
    accuracy_vs_wait_figure,
    answer_settling_figure,
    frontier_figure,
    reliability_figure,
    save_figure,
    selective_figure,
    thinking_tokens_figure,
)
from m1.evaluation.report.html import render_html
from m1.evaluation.report.items import item_sample
from m1.evaluation.report.load import MACRO, MICRO, RunResult, item_sets, item_sets_note, load_runs, ordered_sources
from m1.evaluation.report.markdown import render_markdown
from m1.evaluation.report.tables import (
    Tables,
    audit_table,
    calibration_table,
    cheapest_table,
    domain_table,
    early_exit_tables,
    flipped_tables,
    flips_tables,
    frontier_table,
    no_answer_table,
    paper_table,
    runs_table,
    source_table,
    summary_table,
    usage_table,
)
from m1.evaluation.view_links import VIEW_URL
from m1.io import atomic_write_text
from m1.scoring import MODES

@dataclass(frozen=True)
class ReportPaths:
    """Where a report was written."""

    html: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)  # PNG and SVG of every figure drawn
    early_exit: dict[str, Any] = field(default_factory=dict)  # run label → its early-exit comparisons, as tabled


def write_report(runs: list[Path], out_dir: Path | None = None, *, paper_overlay: bool = True,
                 mode: str = "strict", target_accuracy: float = TARGET, view_url: str = VIEW_URL) -> ReportPaths:
    """Write report.html (self-contained), report.md and the figures for finished `m1 eval` runs.

    `out_dir` defaults to `<first run>/report/`. `mode` is the extraction mode whose metrics are
    shown ("strict" or "reference"); `paper_overlay` adds the paper's numbers at B = 4096;
    `target_accuracy` is the accuracy the calibration section finds a confidence threshold for.
    `view_url` is the address of `m1 view` that report.html's tables link to ("": no links; report.md,
    made to be pasted where this machine's address means nothing, has none).
    """
    if not runs:
        raise ValueError("write_report needs at least one run directory")
    checked_target(target_accuracy)
    results = load_runs(runs, mode)
    out_dir = Path(out_dir) if out_dir is not None else results[0].path / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = ordered_sources(results)
    panels = sources + [MICRO, MACRO]

    tables = Tables(
        runs=runs_table(results),
        summary=summary_table(results, mode),
        usage=usage_table(results),
        sources=[source_table(run, sources, mode) for run in results],
        no_answer=[no_answer_table(run, sources, mode) for run in results],
        paper=paper_table(results, sources, mode) if paper_overlay else None,
        early_exit=early_exit_tables(results, mode),
    )
    notes = []
    if paper_overlay and tables.paper is None:
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
    figure_paths: list[Path] = []

    def drawn(specs: list[tuple[str, str, Any, str]]) -> list[DrawnFigure]:
        found = []
        for stem, title, figure, caption in specs:
            if figure is not None:
                paths, png = save_figure(figure, out_dir, stem)
                figure_paths.extend(paths)
                found.append(DrawnFigure(stem, title, caption, png))
        return found

    figures = drawn(figure_specs)
    if not any(d.stem == "accuracy_vs_budget" for d in figures):
        notes.append("No run has a thinking budget, so there is no accuracy-versus-budget figure.")
    sections = compute_sections(results, sources, mode, target_accuracy, drawn)

    html_path = atomic_write_text(out_dir / "report.html",
                                  render_html(results, mode, tables, figures, notes, sections, view_url,
                                              item_sample(results, mode)))
    markdown_path = atomic_write_text(out_dir / "report.md",
                                      render_markdown(results, mode, tables, figures, notes, sections))
    return ReportPaths(html_path, markdown_path, figure_paths,
                       {run.label: run.early_exit for run in results if run.early_exit})


def compute_sections(runs: list[RunResult], sources: list[str], mode: str, target: float,
                     drawn: Callable[[list[tuple[str, str, Any, str]]], list[DrawnFigure]]) -> list[Section]:
    """The budget audit (issue 17), then the sections of issue 14, each only where some run's
    metrics.json has its data; `drawn`
    saves figures and gives them back as the documents show them."""
    other = next(m for m in MODES if m != mode)
    sections = [Section("Budget audit", "How every grid point's thinking budget was honoured, whatever the backend: "
                        "the thinking tokens used against the budget asked for, and what went wrong beside it.",
                        tables=[audit_table(runs)])]
    if frontier := frontier_table(runs, mode):
        cheapest = cheapest_table(runs, "sources", sources, mode,
                                  f"Cheapest policy within 1 point of the best, per source ({mode} extraction)")
        tables = [table for table in (frontier, cheapest, frontier_table(runs, other)) if table is not None]
        sets = item_sets(runs)
        figures = drawn([("accuracy_vs_compute", "Accuracy against tokens per item",
                          frontier_figure(runs, [mode, other]),
                          f"Left {mode} extraction (the tables' mode), right {other}. Every policy of every run (a "
                          "grid point, or a vote over its samples): accuracy with its 95 % interval against generated "
                          "tokens per item (log axis). Colour: run; marker: how the samples were aggregated. Black: "
                          "the Pareto frontier" + (" of each item set, in its own line style" if len(sets) > 1 else "")
                          + ", its policies named.")])
        intro = ("Which policy gives the best accuracy per token: fixed budgets, \"Wait\" rounds, early exit and "
                 "votes over parallel samples, costed alike.")
        sections.append(Section("Accuracy against compute", " ".join(filter(None, [intro, item_sets_note(runs, sets)])),
                                figures, tables))
    if flips := flips_tables(runs, sources, mode):
        sections.append(Section("Answer flips between neighbouring grid points",
                                "Does thinking longer, one more \"Wait\" or stopping early turn right answers wrong?",
                                tables=flips + flipped_tables(runs, mode)))
    if calibration := calibration_table(runs, mode, target):
        figures = drawn([
            ("reliability", "Reliability diagrams", reliability_figure(runs),
             "One panel per grid point whose answer probabilities were read: the accuracy of the items in each "
             "tenth of confidence, against perfect calibration."),
            ("selective_accuracy", "Selective accuracy against coverage", selective_figure(runs, target),
             f"Answering only the items whose probability reaches a threshold: accuracy of those answered against "
             f"their share, each threshold a point of the line; dashed: the {100 * target:g} % target."),
        ])
        sections.append(Section("Calibration and abstention", "How far the answer's probability can be trusted, and "
                                "the threshold to abstain below.", figures, [calibration]))
    if domains := [table for run in runs if (table := domain_table(run, mode)) is not None]:
        sections.append(Section("Results by MeSH domain", tables=domains))
    return sections
