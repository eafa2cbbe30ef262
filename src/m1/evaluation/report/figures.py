"""The report's figures, drawn with matplotlib on figures of their own (no pyplot state) and saved
as PNG and SVG: accuracy against the thinking budget (the paper's figure 1, with a trend in
log2(budget)), against the number of "Wait" extensions (figure 3), thinking tokens used per grid
point, how soon answers settle under early exit, and for issue 14 accuracy against compute (a panel
per extraction mode, a frontier per set of runs on the same items), reliability and selective accuracy.

    figure = accuracy_vs_budget_figure(runs, panels, "strict", paper_overlay=True)   # None: nothing to draw
    paths, png = save_figure(figure, out_dir, "accuracy_vs_budget")

Several runs share every figure, one colour and marker per run; a run's early-exit settings,
sample counts and prompt suffixes are lines of their own in another line style.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m1.evaluation.paper import PAPER_BUDGET, PAPER_MODELS, paper_accuracy
from m1.evaluation.report.choose import frontier_names, target_threshold
from m1.evaluation.report.load import (
    MICRO,
    PANEL_TITLES,
    PointResult,
    RunResult,
    costed_policies,
    item_sets,
    read_points,
)
from m1.evaluation.report.stats import fit_log2_trend
from m1.evaluation.report.text import early_exit_rule, pct, short_budget
from m1.io import atomic_write_bytes

RUN_MARKERS = ("o", "s", "^", "D", "v", "<", ">", "h", "p", "8")
VARIANT_LINESTYLES = ("-", "--", ":", "-.")
PAPER_MARKERS = dict(zip(PAPER_MODELS, ("*", "X", "P")))
PAPER_COLOURS = dict(zip(PAPER_MODELS, ("#000000", "#555555", "#999999")))
PAPER_SIZES = dict(zip(PAPER_MODELS, (110, 55, 60)))  # a star needs more area to look as big


@dataclass(frozen=True)
class Series:
    """Points of one run drawn as one line: a prompt suffix, an early-exit setting (or none) and a
    number of samples, and a budget or a Wait count held fixed."""

    run_index: int
    variant: int  # 0 for the run's main line; others get another line style
    label: str
    points: list[PointResult]


def _variant(point: PointResult) -> tuple[int, int, int]:
    """What tells a run's lines apart besides budget and Wait: the suffix, early exit, samples."""
    return point.suffix_index, point.early_exit_index, point.samples


def _variant_tag(suffix_index: int, early_exit_index: int, samples: int) -> str:
    return ((f" EE{early_exit_index}" if early_exit_index else "") + (f" N{samples}" if samples > 1 else "")
            + (f" S{suffix_index}" if suffix_index else ""))


def budget_series(runs: Sequence[RunResult]) -> tuple[list[Series], list[Series]]:
    """Lines over the budget (at each run's smallest Wait count), one per prompt suffix, early-exit
    setting (early exit's caps beside the fixed budgets) and number of samples, and flat lines of
    no-thinking points."""
    lines, flat = [], []
    for index, run in enumerate(runs):
        variants = sorted({_variant(p) for p in run.points})
        for number, variant in enumerate(variants):
            thinking = [p for p in run.thinking_points if _variant(p) == variant]
            tag = _variant_tag(*variant)
            if thinking:
                fewest = min(p.extensions for p in thinking)
                label = run.label + tag + (f" (Wait={fewest})" if fewest else "")
                lines.append(Series(index, number, label, [p for p in thinking if p.extensions == fewest]))
            for point in run.points:
                if point.budget is None and _variant(point) == variant:
                    flat.append(Series(index, number, f"{run.label}{tag}: no thinking", [point]))
    return lines, flat


def wait_series(runs: Sequence[RunResult]) -> list[Series]:
    """One line per run, variant and budget evaluated at two or more Wait counts."""
    found = []
    for index, run in enumerate(runs):
        groups: dict[tuple[int, int, int, int], list[PointResult]] = {}
        for point in run.thinking_points:
            suffix, early_exit, samples = _variant(point)
            groups.setdefault((point.budget, early_exit, suffix, samples), []).append(point)
        for number, ((budget, early_exit, suffix, samples), points) in enumerate(sorted(groups.items())):
            if len({p.extensions for p in points}) >= 2:
                label = f"{run.label}{_variant_tag(suffix, early_exit, samples)} B={short_budget(budget)}"
                found.append(Series(index, number, label, sorted(points, key=lambda p: p.extensions)))
    return found


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("m1 report draws its figures with matplotlib: pip install matplotlib") from None
    return matplotlib


# No text of a figure is mathtext: a run label with two "$" in it would be parsed as TeX and stop
# the report. Text is made when a figure is built and laid out when it is saved; both go literal.
LITERAL_TEXT = {"text.parse_math": False}


def _literal_text(draw: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> Any:
        with _matplotlib().rc_context(LITERAL_TEXT):
            return draw(*args, **kwargs)

    return drawn


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


@_literal_text
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
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: short_budget(round(value))))
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


@_literal_text
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


@_literal_text
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
        values = [[max(1, t) for t in p.usage.thinking_tokens or [0]] for p in present]
        boxes = tokens_axis.boxplot(values, positions=positions, widths=slot * 0.85, patch_artist=True,
                                    manage_ticks=False, flierprops={"markersize": 2, "markeredgecolor": colour},
                                    medianprops={"color": "black"})
        for box in boxes["boxes"]:
            box.set(facecolor=colour, alpha=0.55, edgecolor=colour)
        rates = [100 * p.usage.budget_hit_rate for p in present]
        bars = hits_axis.bar(positions, rates, width=slot * 0.85, color=colour, alpha=0.8)
        if len(categories) * len(thinking) <= 24:
            hits_axis.bar_label(bars, fmt="%.0f", fontsize="x-small", padding=1)
        handles.append(Patch(facecolor=colour, alpha=0.7, label=run.label))
    for c, key in enumerate(categories):
        tokens_axis.hlines(keyed[key].budget, c - 0.45, c + 0.45, colors="black", linestyles="--", linewidth=1,
                           label="thinking budget" if c == 0 else None)
    tokens_axis.set_yscale("log", base=2)
    tokens_axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: short_budget(round(value))))
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


@_literal_text
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
            label = (f"{run.label} " if len(runs) > 1 else "") + f"{point.key}: {early_exit_rule(point.early_exit)}"
            axis.step(x[keep], 100 * np.asarray(shares, dtype=float)[keep], where="post", linewidth=1.4,
                      color=colours[number % len(colours)],
                      linestyle=VARIANT_LINESTYLES[index % len(VARIANT_LINESTYLES)], label=label)
        if not drawn:
            _no_data(axis)
        axis.set_xscale("log", base=2)
        if ticks:
            axis.xaxis.set_major_locator(FixedLocator(ticks))
            axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: short_budget(round(value))))
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
    with matplotlib.rc_context({"svg.hashsalt": "m1-report"} | LITERAL_TEXT):  # hashsalt: the same SVG each time
        for kind in ("png", "svg"):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=kind, dpi=110, metadata={"Date": None} if kind == "svg" else None)
            data = buffer.getvalue()
            paths.append(atomic_write_bytes(directory / f"{stem}.{kind}", data))
            png = data if kind == "png" else png
            # The PNG's draw laid the figure out; the SVG keeps that layout rather than solving it
            # again (half of a figure's drawing time goes to the constrained layout).
            figure.set_layout_engine("none")
    return paths, png


def _error_bars(scored: list) -> Any:
    """Distances from each accuracy to its interval ends, in points; never negative (a Wilson
    bound can sit a rounding error past an accuracy of exactly 0 or 1)."""
    import numpy as np

    low = [100 * (s.accuracy - s.ci_low) for _, s in scored]
    high = [100 * (s.ci_high - s.accuracy) for _, s in scored]
    return np.clip(np.array([low, high]), 0.0, None)


# ------------------------------------------------------------------ accuracy against compute, calibration (issue 14)

AGGREGATION_MARKERS = {"single": "o", "sample": "v", "majority": "s", "weighted": "^"}  # esc<w>: "D"


FRONTIER_LINESTYLES = ("--", "-.", ":")  # one per item set of runs


def _label_frontier(axis: Any, points: Sequence[tuple[str, float, float]]) -> None:
    """Name the frontier's policies, cheapest first: policies at the same place share one label
    ("first +k"), and a label close to the one before it goes below its point instead of above."""
    import math

    groups: list[list[tuple[str, float, float]]] = []
    for point in points:
        if groups and math.isclose(groups[-1][0][1], point[1]) and math.isclose(groups[-1][0][2], point[2]):
            groups[-1].append(point)
        else:
            groups.append([point])
    below, previous = False, None
    for group in groups:
        name, tokens, accuracy = group[0]
        text = name if len(group) == 1 else f"{name} +{len(group) - 1}"
        near = previous is not None and abs(math.log10(tokens / previous[0])) < 0.12 and abs(accuracy - previous[1]) < 4
        below = near and not below
        axis.annotate(text, (tokens, accuracy), textcoords="offset points", xytext=(4, -11 if below else 5),
                      fontsize="x-small")
        previous = (tokens, accuracy)


@_literal_text
def frontier_figure(runs: Sequence[RunResult], modes: Sequence[str]) -> Any | None:
    """A panel per extraction mode (the first is the tables' mode): every policy's accuracy (95 %
    interval) against its mean tokens per item, and the Pareto frontier of each item set of runs."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    policies = costed_policies(runs)
    if not policies:
        return None
    colours = _colours()
    sets = item_sets(runs)
    several = len(runs) > 1
    figure = Figure(figsize=(6.0 * len(modes), 5.8), layout="constrained")
    axes = figure.subplots(1, len(modes), sharey=True, squeeze=False)[0]
    for axis, mode in zip(axes, modes):
        on_frontier = frontier_names(policies, sets, mode)
        for p in policies:
            score = p.score(mode)
            error = np.clip([[100 * (score.accuracy - score.ci_low)], [100 * (score.ci_high - score.accuracy)]], 0,
                            None)
            axis.errorbar([p.tokens(mode)], [100 * score.accuracy], yerr=error,
                          color=colours[p.run_index % len(colours)],
                          fmt=AGGREGATION_MARKERS.get(p.policy.aggregation, "D"), markersize=6, capsize=2,
                          elinewidth=0.8, alpha=0.9)
        for number, members in enumerate(sets):
            frontier = sorted((p for p in policies if p.run_index in members and p.name in on_frontier),
                              key=lambda p: p.tokens(mode))
            axis.plot([p.tokens(mode) for p in frontier], [100 * p.score(mode).accuracy for p in frontier],
                      FRONTIER_LINESTYLES[number % len(FRONTIER_LINESTYLES)], color="black", linewidth=1.2, zorder=1)
            _label_frontier(axis, [(p.shown(several), p.tokens(mode), 100 * p.score(mode).accuracy) for p in frontier])
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title(f"{mode} extraction", fontsize="medium")
        axis.set_xlabel("generated tokens per item (mean; every sample a policy used)", fontsize="small")
        axis.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("accuracy %")
    _clamp_percent_axis(axes[0])
    handles = [Line2D([], [], color=colours[i % len(colours)], marker="o", linestyle="", label=run.label)
               for i, run in enumerate(runs) if run.policies]
    shown = sorted({p.policy.aggregation for p in policies})
    handles += [Line2D([], [], color="grey", marker=AGGREGATION_MARKERS.get(a, "D"), linestyle="", label=a)
                for a in shown]
    handles += [Line2D([], [], color="black", linestyle=FRONTIER_LINESTYLES[n % len(FRONTIER_LINESTYLES)],
                       label="Pareto frontier" + (f", item set {n + 1}" if len(sets) > 1 else ""))
                for n in range(len(sets))]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(5, len(handles)), fontsize="small",
                  frameon=False)
    figure.suptitle("Accuracy against compute (bars: 95 % CI)", fontsize="medium")
    return figure


@_literal_text
def reliability_figure(runs: Sequence[RunResult]) -> Any | None:
    """A reliability diagram per grid point where probabilities were read: accuracy per confidence
    bin against the diagonal."""
    found = read_points(runs)
    if not found:
        return None
    several = len(runs) > 1
    titles = [f"{run.label}: {point.key}" if several else point.key for run, point in found]
    figure, axes = _panel_grid(titles, width=2.6, height=2.5)
    colours = _colours()
    for axis, title, (run, point) in zip(axes, titles, found):
        calibration = point.calibration
        filled = [b for b in calibration.bins if b.count]
        colour = colours[runs.index(run) % len(colours)]
        axis.bar([(b.low + b.high) / 2 for b in filled], [b.accuracy for b in filled],
                 width=[0.95 * (b.high - b.low) for b in filled], color=colour, alpha=0.6)
        axis.plot([b.confidence for b in filled], [b.accuracy for b in filled], "o", color="black", markersize=3)
        axis.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
        if not filled:
            _no_data(axis)
        ece = "" if calibration.ece is None else f" (ECE {calibration.ece:.3f})"
        axis.set_title(title + ece, fontsize="small")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.02)
        axis.set_xlabel("confidence", fontsize="small")
        axis.set_ylabel("accuracy", fontsize="small")
        axis.grid(alpha=0.3)
    figure.suptitle("Reliability: accuracy per confidence bin (bars), mean confidence (dots), perfect calibration "
                    "(dotted)", fontsize="medium")
    return figure


@_literal_text
def selective_figure(runs: Sequence[RunResult], target: float) -> Any | None:
    """Selective accuracy against coverage per point where probabilities were read, the target
    accuracy marked."""
    from matplotlib.figure import Figure

    found = read_points(runs)
    if not found:
        return None
    colours = _colours()
    figure = Figure(figsize=(9.5, 5.6), layout="constrained")
    axis = figure.subplots()
    several = len(runs) > 1
    for number, (run, point) in enumerate(found):
        curve = [p for p in point.calibration.selective if p.accuracy is not None]
        colour = colours[number % len(colours)]
        label = f"{run.label}: {point.key}" if several else point.key
        axis.plot([100 * p.coverage for p in curve], [100 * p.accuracy for p in curve], color=colour, linewidth=1.3,
                  linestyle=VARIANT_LINESTYLES[runs.index(run) % len(VARIANT_LINESTYLES)], label=label)
        reached = target_threshold(point.calibration, target)
        if reached.threshold is not None:
            # Where the stored curve lacks scoring's threshold, its accuracy is known to reach the target only.
            there = target if reached.accuracy is None else reached.accuracy
            axis.plot([100 * reached.coverage], [100 * there], "o", color=colour, markersize=5)
    axis.axhline(100 * target, color="black", linestyle="--", linewidth=1, label=f"target {pct(target)} %")
    axis.set_xlim(0, 101)
    axis.set_xlabel("coverage % (items answered: confidence at or above the threshold)")
    axis.set_ylabel("accuracy % of the answered items")
    axis.grid(alpha=0.3)
    _clamp_percent_axis(axis)
    handles, labels = axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize="small",
                  frameon=False)
    figure.suptitle("Selective accuracy against coverage (dots: the lowest threshold reaching the target)",
                    fontsize="medium")
    return figure
