"""The report's tables, as data both renderers (HTML, Markdown) share: runs, the summary per grid
point, accuracy and no-answer rate by source, thinking-token use, the paper comparison at
B = 4096, and early exit against the fixed budget.

    table = summary_table(runs, "strict")
    table.header, table.rows          # cell text, numbers already formatted
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from m1.evaluation.analysis import SELECTIVE_POINTS
from m1.evaluation.audit import DISAGREEMENT_PERCENT, HONOURED, NO_BUDGET, NOT_COUNTED, NOT_ENFORCED, exceeded
from m1.evaluation.early_exit import difference_text
from m1.evaluation.paper import (
    BENCHMARK_OF_SOURCE,
    PAPER_BUDGET,
    PAPER_MODELS,
    PAPER_TOLERANCE,
    paper_accuracy,
    paper_model_for,
)
from m1.evaluation.report.choose import Threshold, best, cheapest_within, frontier_names, target_threshold
from m1.evaluation.report.load import (
    MACRO,
    MICRO,
    PANEL_TITLES,
    Costed,
    PointResult,
    RunResult,
    Score,
    calibrated_points,
    costed_policies,
    item_sets,
)
from m1.evaluation.report.text import budget_text, early_exit_rule, number, p_value, pct, with_ci
from m1.evaluation.summary import FlipCounts, Flips, GroupScore
from m1.evaluation.view_links import item_url, items_url, point_name


@dataclass
class TableData:
    """A table both renderers share: header, rows of cell text, right-aligned columns by index."""

    title: str
    header: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)
    rule_before: set[int] = field(default_factory=set)  # row indices that start a new section
    note: str = ""
    # `m1 view` paths (m1.evaluation.view_links): of cells, by (row, column), and of the whole table
    links: dict[tuple[int, int], str] = field(default_factory=dict)
    link: str | None = None


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
        return [point.key, budget_text(point.budget), str(point.extensions), with_ci(point.score(MICRO)),
                with_ci(point.score(MACRO)), pct(point.no_answer_rate), f"{usage.thinking_tokens_mean:.0f}",
                "—" if point.budget is None else pct(usage.budget_hit_rate)]

    rows, rules, first = _rows_per_point(runs, cells)
    header = (["run"] if first else []) + ["point", "budget", "Wait", "micro acc % (95 % CI)",
                                           "macro acc % (95 % CI)", "no answer %", "thinking tokens (mean)",
                                           "budget hit %"]
    return TableData(f"Summary ({mode} extraction)", header, rows, numeric=set(range(first + 1, len(header))),
                     rule_before=rules)


def source_table(run: RunResult, sources: Sequence[str], mode: str) -> TableData:
    """One run: a row per source (accuracy and 95 % interval at every grid point), then the averages."""
    header = ["source", "n"] + [point.key for point in run.points]
    rows, links = [], {}
    for source in sources:
        counts = {s.n for s in (p.score(source) for p in run.points) if s is not None}
        links[len(rows), 0] = items_url(run=run.view_name, source=source)
        for column, point in enumerate(run.points, start=2):  # the items this point got wrong
            links[len(rows), column] = items_url(run=run.view_name, source=source, mode=mode,
                                                 point=point_name(run.view_name, point.key), correct="false")
        rows.append([source, "/".join(str(c) for c in sorted(counts)) or "0"]
                    + [with_ci(point.score(source)) for point in run.points])
    rule = len(rows)
    rows.append([PANEL_TITLES[MICRO], str(run.items)] + [with_ci(p.score(MICRO)) for p in run.points])
    rows.append([PANEL_TITLES[MACRO], str(len(sources))] + [with_ci(p.score(MACRO)) for p in run.points])
    rows.append(["no answer %", ""] + [pct(p.no_answer_rate) for p in run.points])
    return TableData(f"Accuracy % by source — {run.label} ({mode} extraction)", header, rows,
                     numeric=set(range(1, len(header))), rule_before={rule},
                     note="Cells: accuracy (95 % interval; Wilson per source and micro, normal for macro). "
                          "An item without an answer counts as wrong. In m1 view, a source lists its items "
                          "and a cell the items answered wrong there.", links=links)


def no_answer_table(run: RunResult, sources: Sequence[str], mode: str) -> TableData:
    header = ["source"] + [point.key for point in run.points]
    rows, links = [], {}
    for source in [*sources, None]:
        for column, point in enumerate(run.points, start=1):  # the items without an answer there
            links[len(rows), column] = items_url(run=run.view_name, source=source, mode=mode,
                                                 point=point_name(run.view_name, point.key), no_answer="true")
        if source is None:
            rows.append(["all items"] + [pct(p.no_answer_rate) for p in run.points])
        else:
            rates = [point.source_no_answer(source) for point in run.points]
            rows.append([source] + ["—" if rate is None else pct(rate) for rate in rates])
    return TableData(f"No-answer rate % by source — {run.label} ({mode} extraction)", header, rows,
                     numeric=set(range(1, len(header))), rule_before={len(sources)}, links=links)


def usage_table(runs: Sequence[RunResult]) -> TableData:
    # Total tokens and wall time per item came with issue 14; runs scored before have neither.
    costed = any(p.usage.total_tokens_mean is not None for run in runs for p in run.points)

    def cells(point: PointResult) -> list[str]:
        usage = point.usage
        ends = ", ".join(f"{end} {count}" for end, count in usage.thinking_end.items())
        row = [point.key, budget_text(point.budget), f"{usage.thinking_tokens_mean:.0f}",
               f"{usage.thinking_tokens_median:.0f}", str(usage.thinking_tokens_max),
               "—" if point.budget is None else pct(usage.budget_hit_rate),
               f"{usage.extensions_used_mean:.2f}", ends or "—", str(usage.errors)]
        return row + ([number(usage.total_tokens_mean), number(usage.wall_seconds_per_item, 2)] if costed else [])

    rows, rules, first = _rows_per_point(runs, cells)
    header = (["run"] if first else []) + ["point", "budget", "thinking tokens mean", "median", "max",
                                           "budget hit %", "Wait used (mean)", "thinking ended by", "errors"]
    numeric = {first + i for i in (2, 3, 4, 5, 6, 8)}
    if costed:
        header += ["total tokens per item (all samples)", "wall s per item"]
        numeric |= {first + 9, first + 10}
    return TableData("Thinking tokens", header, rows, numeric=numeric, rule_before=rules)


def audit_table(runs: Sequence[RunResult]) -> TableData:
    """How every grid point's thinking budget was honoured (`m1.evaluation.audit`), whatever the
    backend; a dash for a point whose audit is unknown (predictions unreadable) or does not apply."""
    priced = any(p.audit is not None and p.audit.cost is not None for run in runs for p in run.points)

    def cells(point: PointResult) -> list[str]:
        audit = point.audit
        # An effort-only point asked for no number of tokens: its level is what it asked for.
        effort_only = point.budget is None and audit is not None and audit.effort is not None
        budget = f"effort {audit.effort}" if effort_only else budget_text(point.budget)
        if audit is None:
            return [point.key, budget] + ["—"] * (10 + priced) + ["no audit"]
        rate = audit.over_budget_rate
        disagreement = audit.count_disagreement_rate
        row = [point.key, budget, number(audit.thinking_tokens_median), number(audit.thinking_tokens_p95),
               number(audit.thinking_tokens_max), "—" if rate is None else pct(rate), number(audit.overshoot_max),
               str(audit.empty_answers), str(audit.cut_by_length), str(audit.never_closed),
               "—" if disagreement is None else pct(disagreement)]
        if priced:
            row.append("—" if audit.cost is None else f"{audit.cost.per_item:.4g}")
        return row + [audit.verdict]

    rows, rules, first = _rows_per_point(runs, cells)
    header = (["run"] if first else []) + ["point", "budget", "thinking median", "p95", "max", "over budget %",
                                           "max overshoot", "empty answers", "cut by length", "never closed",
                                           "count disagreement %"] + (["cost per item"] if priced else []) + ["verdict"]
    return TableData("Thinking budget against use, per grid point", header, rows,
                     numeric=set(range(first + 2, len(header) - 1)), rule_before=rules,
                     note="Every generation (sample) counts once. Thinking tokens are the backend's count the budget "
                          "is checked against; rows without a count are left out of it. Count disagreement: the "
                          f"provider's reported thinking tokens more than {DISAGREEMENT_PERCENT} % from m1's recount, "
                          f"among generations with both. Verdicts: {HONOURED} (none over budget), {exceeded('N')}, "
                          f"{NOT_ENFORCED} (more than half over), {NO_BUDGET}, {NOT_COUNTED} (no counts).")


def paper_point(run: RunResult) -> PointResult | None:
    """The run's point comparable with the paper: B = 4096, no extensions, the first prompt suffix,
    one sample, no early exit."""
    return next((p for p in run.points if p.budget == PAPER_BUDGET and p.extensions == 0 and p.suffix_index == 0
                 and p.early_exit_index == 0 and p.samples == 1), None)


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
        row += [with_ci(score) for score in ours]
        for (run, _), score in zip(compared, ours):
            if matched[run.label]:
                row.append("—" if score is None else f"{100 * score.accuracy - paper[matched[run.label]]:+.1f}")
        rows.append(row)
    note = (f"The paper's numbers are read off its figure at B = {PAPER_BUDGET} (±{PAPER_TOLERANCE:.0f} point) and "
            "were scored with its own grader, which guesses when a reply has no answer")
    note += "." if mode == "reference" else "; the reference extraction mode compares like with like."
    return TableData(f"Compared with the paper at B = {PAPER_BUDGET}, no extensions ({mode} extraction)", header, rows,
                     numeric=set(range(2, len(header))), note=note)


def _comparison_header(mode: str) -> list[str]:
    return ["n", "thinking tokens fixed", "thinking tokens early exit", "tokens saved %", "exited early %",
            "probe tokens (mean)", f"acc % fixed → early exit ({mode})", "Δ strict, points (95 % CI)", "p strict",
            "Δ reference, points (95 % CI)", "p reference"]


def _comparison_cells(group: dict[str, Any], mode: str) -> list[str]:
    chosen = group.get(mode)
    accuracy = "—" if chosen is None else f"{pct(chosen['accuracy_b'])} → {pct(chosen['accuracy_a'])}"
    rate = group.get("early_exit_rate")
    paired = [(difference_text(group.get(m)), p_value((group.get(m) or {}).get("p_value"))) for m in ("strict", "reference")]
    return [str(group["items"]), number(group["thinking_tokens_fixed"]), number(group["thinking_tokens_early_exit"]),
            number(group["tokens_saved_pct"], 1), "—" if rate is None else pct(rate),
            number(group.get("probe_tokens_mean")), accuracy, *paired[0], *paired[1]]


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
    overall = [([run.label] if several else []) + [c["point"], c["fixed"], early_exit_rule(c["early_exit"])]
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


@dataclass(frozen=True)
class Tables:
    """Every table of one report, as both documents place them."""

    runs: TableData
    summary: TableData
    usage: TableData
    sources: list[TableData]  # one per run
    no_answer: list[TableData]  # one per run
    paper: TableData | None  # None: no run is comparable with the paper, or no overlay asked for
    early_exit: list[TableData]  # none without early exit


# ------------------------------------------------------------------ accuracy against compute (issue 14)


def _ci(score: GroupScore | None) -> str:
    return "—" if score is None else with_ci(Score(score.accuracy, score.ci_low, score.ci_high, score.n))


def _set_number(sets: Sequence[Sequence[int]]) -> dict[int, int]:
    """Run index → its item set's number (1, 2, ...)."""
    return {index: number for number, members in enumerate(sets, 1) for index in members}


def frontier_table(runs: Sequence[RunResult], mode: str) -> TableData | None:
    """Every policy of every run, cheapest first (per item set, when the runs answered different
    items): accuracy, cost, and whether it is on its item set's frontier."""
    policies = costed_policies(runs)
    if not policies:
        return None
    sets = item_sets(runs)
    on_frontier, number_of = frontier_names(policies, sets, mode), _set_number(sets)
    several, split = len(runs) > 1, len(sets) > 1
    rows, rules = [], set()
    ordered = sorted(policies, key=lambda p: (number_of[p.run_index], p.tokens(mode), p.name))
    for row, p in enumerate(ordered):
        if row and number_of[p.run_index] != number_of[ordered[row - 1].run_index]:
            rules.add(row)
        score, wall = p.score(mode), p.policy.mode(mode).wall_seconds_per_item
        cost = "—" if score.cost_per_correct is None else f"{score.cost_per_correct:.0f}"
        rows.append(([str(number_of[p.run_index])] if split else []) + ([p.run.label] if several else []) + [
            p.policy.policy, p.policy.aggregation, str(p.policy.samples), _ci(score), f"{p.tokens(mode):.0f}",
            number(wall, 2), cost, "yes" if p.name in on_frontier else ""])
    first = int(split) + int(several)
    header = (["item set"] if split else []) + (["run"] if several else []) + [
        "policy", "aggregation", "samples", "accuracy % (95 % CI)", "tokens per item", "wall s per item",
        "tokens per correct", "on the frontier"]
    others = "of its item set " if split else ""
    return TableData(f"Accuracy against compute, every policy ({mode} extraction)", header, rows,
                     numeric={first + i for i in (2, 3, 4, 5, 6)}, rule_before=rules,
                     note="Tokens: generated per item over every sample a policy used (thinking, answer and "
                          f"early-exit probes). On the frontier: no other policy {others}is at least as accurate "
                          "for at most as many tokens (one of the two strictly). Accuracy with its 95 % Wilson "
                          "interval; an item without an answer counts as wrong.")


def cheapest_table(runs: Sequence[RunResult], kind: str, groups: Sequence[str], mode: str,
                   title: str) -> TableData | None:
    """Per group (source or domain), then all items: the best policy and the cheapest within 1 point
    of it, per item set when the runs answered different items."""
    policies = costed_policies(runs)
    if not policies:
        return None
    sets = item_sets(runs)
    several, split = len(runs) > 1, len(sets) > 1
    by_name = {p.name: p for p in policies}
    rows, rules = [], set()
    for number_, members in enumerate(sets, 1):
        start = len(rows)
        if start:
            rules.add(start)
        for group in [*groups, None]:
            where = (kind if group else "overall", group)
            options = [o for p in policies if p.run_index in members and (o := p.option(mode, *where)) is not None]
            top, cheap = best(options), cheapest_within(options)
            if top is None:
                continue
            if group is None and len(rows) > start:  # a rule above the set's "all items"
                rules.add(len(rows))
            chosen = by_name[cheap.name]
            score = chosen.score(mode, *where)
            saved = 100 * (1 - cheap.tokens / top.tokens) if top.tokens else None
            rows.append(([str(number_)] if split else []) + [
                group or "all items", str(score.n), by_name[top.name].shown(several), pct(top.accuracy),
                chosen.shown(several), _ci(score), f"{cheap.tokens:.0f}", number(saved, 1)])
    header = (["item set"] if split else []) + [
        kind[:-1] if kind != "overall" else "group", "n", "best policy", "best acc %", "cheapest within 1 point",
        "its acc % (95 % CI)", "its tokens per item", "tokens saved vs best %"]
    first = int(split)
    return TableData(title, header, rows, numeric={first + i for i in (1, 3, 5, 6, 7)}, rule_before=rules,
                     note="Cheapest within 1 point: of the policies whose accuracy is at least the best minus 1 "
                          "point, the one with the fewest tokens per item of the group (ties by name)"
                          + (", among the runs of one item set." if split else "."))


# ------------------------------------------------------------------ answer flips (issue 14)

FLIPPED_SHOWN = 50  # flipped items listed per pair; metrics.json has them all


def _answer(letter: str | None) -> str:
    return "no answer" if letter is None else letter


def _flip_cells(counts: FlipCounts) -> list[str]:
    return [str(counts.n), str(counts.right_to_wrong), str(counts.wrong_to_right), str(counts.both_right),
            str(counts.both_wrong), p_value(counts.p_value)]


_FLIP_HEADER = ["n", "right → wrong", "wrong → right", "unchanged right", "unchanged wrong", "p (exact McNemar)"]


def flips_tables(runs: Sequence[RunResult], sources: Sequence[str], mode: str) -> list[TableData]:
    """All items for every run's neighbour pairs, then per run by source (in `sources`' order) and by
    domain (by name) when labelled."""
    if not any(run.flips for run in runs):
        return []
    several = len(runs) > 1
    head = (["run"] if several else []) + ["from", "to", "axis"]
    rows, links = [], {}
    for run in runs:
        for f in run.flips:
            _link_flips(links, len(rows), len(head) + 1, run, f, mode)
            rows.append(([run.label] if several else []) + [f.from_, f.to, f.kind] + _flip_cells(f.mode(mode).overall))
    tables = [TableData(f"Answer flips between neighbouring grid points, all items ({mode} extraction)",
                        head + _FLIP_HEADER, rows, numeric=set(range(len(head), len(head) + 6)),
                        note="Neighbours: the next larger budget, one more \"Wait\", or early exit beside its fixed "
                             "budget, all else equal. p: exact McNemar test of right → wrong against wrong → right "
                             "(a point with several samples answers by majority vote). In m1 view, a count "
                             "lists those items.", links=links)]
    for run in runs:
        for kind in ("sources", "domains"):
            rows, rules, links = [], set(), {}
            for f in run.flips:
                groups = getattr(f.mode(mode), kind)
                if not groups:
                    continue
                if rows:
                    rules.add(len(rows))
                names = [s for s in sources if s in groups] if kind == "sources" else sorted(groups)
                for name in [*names, None]:
                    _link_flips(links, len(rows), 3, run, f, mode, **{kind[:-1]: name})
                    counts = f.mode(mode).overall if name is None else groups[name]
                    rows.append([f"{f.from_} → {f.to}", name or "all items"] + _flip_cells(counts))
            if rows:
                tables.append(TableData(f"Answer flips by {kind[:-1]} — {run.label} ({mode} extraction)",
                                        ["pair", kind[:-1]] + _FLIP_HEADER, rows, numeric=set(range(2, 8)),
                                        rule_before=rules, links=links))
    return tables


def _link_flips(links: dict[tuple[int, int], str], row: int, column: int, run: RunResult, f: Flips, mode: str,
                **group: str | None) -> None:
    """Link a flip row's right → wrong count (at `column`) and wrong → right count (the next) to the
    list of those items in m1 view."""
    for offset, direction in enumerate(("right_to_wrong", "wrong_to_right")):
        links[row, column + offset] = items_url(
            run=run.view_name, **group, mode=mode, flip_from=point_name(run.view_name, f.from_),
            flip_to=point_name(run.view_name, f.to), flip=direction)


def flipped_tables(runs: Sequence[RunResult], mode: str, limit: int = FLIPPED_SHOWN) -> list[TableData]:
    """The items that flipped, per run and pair: the first `limit`, and how many more there are."""
    tables = []
    for run in runs:
        for number_, f in enumerate(run.flips):
            flipped = f.mode(mode).flipped
            if not flipped:
                continue
            rows = [[item.uid, item.source, item.gold, _answer(item.from_), _answer(item.to),
                     item.direction.replace("_to_", " → ").replace("_", " ")] for item in flipped[:limit]]
            # Each uid opens the item with the flip's from-point's traces open.
            links = {(row, 0): item_url(item.uid, runs=[run.view_name], point=point_name(run.view_name, f.from_))
                     for row, item in enumerate(flipped[:limit])}
            rest = len(flipped) - len(rows)
            note = (f"{rest} more flipped items are in metrics.json, flips[{number_}].{mode}.flipped."
                    if rest > 0 else "")
            tables.append(TableData(f"Flipped items {f.from_} → {f.to} — {run.label} ({mode} extraction, "
                                    f"{len(flipped)} items)",
                                    ["uid", "source", "gold", f"answer at {f.from_}", f"answer at {f.to}", "flip"],
                                    rows, note=note, links=links,
                                    link=items_url(run=run.view_name, mode=mode,
                                                   flip_from=point_name(run.view_name, f.from_),
                                                   flip_to=point_name(run.view_name, f.to), flip="either")))
    return tables


# ------------------------------------------------------------------ calibration (issue 14)

MISSING_NAMED = 5  # uids named per point for items without a probability
THINNED = "†"  # marks a threshold found on the thinned curve of metrics.json, not scoring's own


def _threshold_cells(point: PointResult, found: Threshold | None) -> list[str]:
    """ECE, then the threshold `found` for the target (None: no probability read), its coverage and
    the accuracy there."""
    calibration = point.calibration
    if found is None:
        what = "items" if point.samples == 1 else "predictions"
        return [f"no probability read ({calibration.n} {what})", "—", "—", "—"]
    mark = "" if found.exact else f" {THINNED}"
    if found.threshold is None:
        return [number(calibration.ece, 3), "not reached" + mark, "—", "—"]
    # The stored curve may lack scoring's threshold; its accuracy reaches the target by definition.
    there = f"≥ {pct(calibration.target.accuracy)}" if found.accuracy is None else pct(found.accuracy)
    return [number(calibration.ece, 3), f"{found.threshold:.3f}{mark}", pct(found.coverage), there]


def calibration_table(runs: Sequence[RunResult], mode: str, target: float) -> TableData | None:
    """Per point: items with a probability, ECE, and the threshold that reaches the target accuracy."""
    found = calibrated_points(runs)
    if not found:
        return None
    several = len(runs) > 1
    rows, missing, thinned = [], [], False
    for run, point in found:
        calibration = point.calibration
        threshold = target_threshold(calibration, target) if calibration.with_probability else None
        thinned |= threshold is not None and not threshold.exact
        rows.append(([run.label] if several else []) + [
            point.key, str(calibration.n), str(calibration.with_probability), str(len(calibration.missing))]
            + _threshold_cells(point, threshold))
        if calibration.missing and calibration.with_probability:  # none read: the row says so
            named = ", ".join(calibration.missing[:MISSING_NAMED])
            more = len(calibration.missing) - MISSING_NAMED
            missing.append(f"{(run.label + ' ') if several else ''}{point.key}: {len(calibration.missing)} "
                           f"({named}{f' and {more} more' if more > 0 else ''})")
    first = 1 if several else 0
    header = (["run"] if several else []) + ["point", "predictions", "with a probability", "without",
                                             "ECE", f"threshold for {pct(target)} % accuracy", "coverage %",
                                             "accuracy % there"]
    note = ("The probability is the answer letter's share of the option letters' probability, read at the forced "
            "answer. ECE: expected calibration error over 10 equal-width bins. Threshold: the lowest confidence "
            f"at which answering only the items at or above it reaches {pct(target)} % accuracy (most coverage), "
            "as scoring found it over every threshold.")
    if thinned:
        aimed = sorted({f"{pct(p.calibration.target.accuracy)} %" for _, p in found if p.calibration.target})
        note += (f" {THINNED}: scoring searched every threshold for {' and '.join(aimed) or 'no target'}, not for "
                 f"this one, so the threshold is read from the selective curve stored in metrics.json (at most "
                 f"{SELECTIVE_POINTS} thresholds), and may sit a step above the lowest that reaches the target.")
    if missing:
        note += " Without a probability (counted, not binned): " + "; ".join(missing) + "."
    return TableData(f"Calibration of the answer probability ({mode} extraction)", header, rows,
                     numeric=set(range(first + 1, len(header))), note=note)


# ------------------------------------------------------------------ domains (issue 14)

UNLABELLED_NAMED = 5


def domain_table(run: RunResult, mode: str) -> TableData | None:
    """One run: a row per MeSH domain with every policy's accuracy and tokens, and the cheapest within 1 point."""
    if run.domains is None or not run.policies:
        return None
    policies = [Costed(0, run, policy) for policy in run.policies]
    by_name = {p.name: p for p in policies}
    names = sorted({name for p in policies for name in p.policy.mode(mode).domains})
    rows = []
    for name in names:
        scores = [(p, p.score(mode, "domains", name)) for p in policies]
        cheap = cheapest_within([o for p, _ in scores if (o := p.option(mode, "domains", name)) is not None])
        counts = sorted({score.n for _, score in scores if score is not None})
        cells = ["—" if score is None else f"{pct(score.accuracy)} · {p.tokens(mode, 'domains', name):.0f}"
                 for p, score in scores]
        rows.append([name, "/".join(map(str, counts))] + cells
                    + ["—" if cheap is None else by_name[cheap.name].policy.policy])
    header = ["domain", "n"] + [p.policy.policy for p in policies] + ["cheapest within 1 point"]
    info = run.domains
    unlabelled = ", ".join(info.unlabelled[:UNLABELLED_NAMED])
    more = len(info.unlabelled) - UNLABELLED_NAMED
    note = (f"Cells: accuracy % · tokens per item of the domain. Labels: {info.file} (sha256 {info.sha256[:12]}…), "
            f"{info.labelled} items labelled")
    note += (f"; {len(info.unlabelled)} unlabelled, left out of this table ({unlabelled}"
             f"{f' and {more} more' if more > 0 else ''})." if info.unlabelled else ".")
    return TableData(f"Accuracy and tokens by MeSH domain — {run.label} ({mode} extraction)", header, rows,
                     numeric=set(range(1, len(header) - 1)), note=note)
