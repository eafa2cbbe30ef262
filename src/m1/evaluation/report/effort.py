"""`m1 report RUN --effort-table`: an effort table (`m1.engine.wire.effort`) proposed from a run's
budget sweep, for `m1 serve --effort-table FILE`.

    proposal = propose_effort_table(Path("runs/m1-7B-23K-sweep-3f2a9c0e1b"))
    proposal.table.low.thinking_budget, proposal.rows        # (level, budget, accuracy) per level
    write_effort_table(proposal.table, path, note=proposal.note)

The rule, on the run's fixed-budget points without "Wait" rounds (keys `B<budget>_K0`: one sample,
the first prompt suffix, no early exit), scored by the strict grader (micro accuracy over all items):

    none      no thinking
    minimal   the smallest budget of the sweep
    low       the smallest budget whose accuracy is within 5 % (relative) of the best
    medium    the smallest budget within 2 % of the best
    high      the budget of the best accuracy (the smallest one, on a tie)
    xhigh     the largest budget of the sweep

so budgets never fall from minimal to xhigh. A run with fewer than two such budgets is refused:
there is no sweep to choose from. The table sets no "Wait" rounds (K = 0 is what was measured).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m1.data.errors import DataError
from m1.engine.wire.effort import EffortLevel, EffortTable
from m1.evaluation.report.load import load_run

WITHIN = {"low": 0.05, "medium": 0.02}  # relative distance from the best accuracy


@dataclass(frozen=True)
class EffortProposal:
    table: EffortTable
    rows: list[tuple[str, int | None, float | None]]  # (level, budget, strict accuracy); none has neither
    run: str
    note: str  # where the table came from, for the file's header


def propose_effort_table(run_dir: str | Path) -> EffortProposal:
    """The effort table the rule above proposes from the run in `run_dir` (or a `DataError`)."""
    run = load_run(run_dir, mode="strict")
    sweep = sorted((point.budget, point.metrics.micro.accuracy) for point in run.points
                   if point.budget is not None and point.key == f"B{point.budget}_K0")
    if len(sweep) < 2:
        found = ", ".join(f"B{budget}" for budget, _ in sweep) or "none"
        raise DataError.at(run.path / "metrics.json", "", "points",
                           f"run {run.label} has {len(sweep)} fixed-budget point(s) without Wait rounds ({found}); "
                           "an effort table needs a budget sweep of at least 2 budgets",
                           "run m1 eval with grid.max_thinking_tokens=[…] of 2 or more budgets and num_extensions "
                           "including 0 (e.g. configs/eval/budget_sweep.yaml)")
    best = max(accuracy for _, accuracy in sweep)

    def smallest_within(share: float) -> tuple[int, float]:
        return next((budget, accuracy) for budget, accuracy in sweep if accuracy >= best * (1 - share))

    chosen = {"minimal": sweep[0], "low": smallest_within(WITHIN["low"]), "medium": smallest_within(WITHIN["medium"]),
              "high": smallest_within(0.0), "xhigh": sweep[-1]}
    table = EffortTable(**{level: EffortLevel(thinking_budget=budget) for level, (budget, _) in chosen.items()})
    rows = [("none", None, None), *((level, budget, accuracy) for level, (budget, accuracy) in chosen.items())]
    note = (f"reasoning_effort levels proposed by `m1 report --effort-table` from run {run.label} "
            f"({run.model}, preset {run.preset}, {run.items} items)\n"
            f"budgets swept: {', '.join(str(budget) for budget, _ in sweep)}; strict micro accuracy, K = 0\n"
            "high = best accuracy, medium/low = smallest budget within 2 %/5 % of it, "
            "minimal/xhigh = the sweep's ends\n"
            "serve it: m1 serve --effort-table THIS_FILE")
    return EffortProposal(table, rows, run.label, note)
