"""`m1 report RUN --effort-table`: a run scored by the real runner's scoring (the report tests' own
`make_run`) proposes an effort table, which `m1 serve --effort-table` reads back."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from m1.cli import app
from m1.engine.wire.effort import read_effort_table
from m1.evaluation.report.effort import propose_effort_table
from test_report import make_run  # the report tests' run: accuracy rises with log2(budget)


def test_the_report_command_proposes_a_table_serve_reads_back(tmp_path: Path) -> None:
    run = make_run(tmp_path, "sweep", "UCSC-VLAA/m1-7B-23K", [256, 1024, 4096], [0, 2])
    result = CliRunner().invoke(app, ["report", str(run), "--effort-table", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / "effort_table.yaml"
    assert f"m1 serve --effort-table {path}" in result.output and "reasoning_effort levels from sweep" in result.output
    table = read_effort_table(path)  # what m1 serve --effort-table calls
    assert table == propose_effort_table(run).table
    # make_run's accuracy rises with the budget: the best (high) is the largest, the K = 2 points are not read
    assert (table.minimal.thinking_budget, table.high.thinking_budget, table.xhigh.thinking_budget) == (256, 4096, 4096)
    assert not (tmp_path / "out" / "report.html").exists()  # the table only
    listed = CliRunner().invoke(app, ["report", str(run), "--effort-table", "--out", str(tmp_path / "j"), "--json"])
    body = json.loads(listed.stdout)
    assert body["levels"] == table.to_file() and body["accuracy"]["none"] is None


def test_a_run_of_one_budget_is_refused_naming_the_run(tmp_path: Path) -> None:
    run = make_run(tmp_path, "one-budget", "some/model", [512], [0, 2])
    result = CliRunner().invoke(app, ["report", str(run), "--effort-table"])
    assert result.exit_code == 2 and "one-budget" in result.output and "at least 2 budgets" in result.output
    assert not (run / "report" / "effort_table.yaml").exists()
