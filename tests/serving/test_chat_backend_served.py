"""`m1 eval` with the chat backend against a real `m1 serve`, through both of its API dialects:
greedy, the server's own budget must give what `backend: transformers` gives in-process — the
same thinking and the same predicted letters at every point — and audit clean.

The server (tests/serving/conftest.py) maps reasoning_effort through its effort table: minimal,
low and high are budgets 4, 8 and 24 without "Wait" rounds, so the OpenAI dialect's effort grid
meets the in-process budgets 4, 8 and 24; the Anthropic dialect sends the budgets themselves. One
fixed total (max_completion_tokens / max_tokens) stands for the in-process `max_total_tokens`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m1.config import load_config
from m1.evaluation.audit import HONOURED, NO_BUDGET
from m1.evaluation.config import EvalConfig
from m1.evaluation.report import write_report
from m1.evaluation.runner import BUNDLED_SAMPLE, run_eval

from .conftest import EFFORT_TABLE, MODEL

pytestmark = pytest.mark.slow

TOTAL = 40  # thinking + answer tokens, every request
LEVELS = {"minimal": "B4_K0", "low": "B8_K0", "high": "B24_K0"}  # each level's in-process twin


def test_effort_table_is_what_this_test_assumes() -> None:
    assert {level: EFFORT_TABLE[level] for level in LEVELS} == {"minimal": 4, "low": 8, "high": 24}


def common(tmp_path: Path, name: str) -> list[str]:
    return [f"model={MODEL}", f"data={BUNDLED_SAMPLE}", "limit=4", f"out_dir={tmp_path}", f"name={name}",
            "calibration=false"]


def rows(run: Path, point: str) -> dict[str, dict]:
    lines = (run / "points" / point / "predictions.jsonl").read_text().splitlines()
    return {row["uid"]: row for row in map(json.loads, lines)}


def letters(run: Path, point: str) -> dict[str, str | None]:
    lines = (run / "points" / point / "scored.jsonl").read_text().splitlines()
    return {row["uid"]: row["strict_letter"] for row in map(json.loads, lines)}


def test_m1_serve_through_both_dialects_equals_the_in_process_run(server, tmp_path: Path) -> None:
    budgets = "grid.max_thinking_tokens=[4, 8, 24]"
    local = run_eval(load_config(EvalConfig, None, [*common(tmp_path, "local"), budgets,
                                                    f"policy.max_total_tokens={TOTAL}"]))
    openai_run = run_eval(load_config(EvalConfig, None, [
        *common(tmp_path, "openai"), "backend=chat", "grid.max_thinking_tokens=[null]",
        f"grid.effort=[{', '.join(LEVELS)}]",
        "backend_options=" + json.dumps({"dialect": "openai", "base_url": server.base_url, "max_total_tokens": TOTAL})]))
    anthropic_run = run_eval(load_config(EvalConfig, None, [
        *common(tmp_path, "anthropic"), "backend=chat", budgets,
        "backend_options=" + json.dumps({"dialect": "anthropic", "base_url": server.url, "max_total_tokens": TOTAL,
                                         "api_key_env": "M1_TEST_UNSET_KEY"})]))
    assert [p["point"] for p in local["points"]] == list(LEVELS.values())
    assert [p["point"] for p in openai_run["points"]] == [f"E{level}" for level in LEVELS]
    for level, point in LEVELS.items():
        reference = rows(tmp_path / "local", point)
        for run, key in ((tmp_path / "openai", f"E{level}"), (tmp_path / "anthropic", point)):
            served = rows(run, key)
            assert served.keys() == reference.keys()
            for uid, row in served.items():
                assert row["error"] is None, row["error"]
                assert row["thinking"] == reference[uid]["thinking"], (run.name, key, uid)
                assert row["reported_thinking_tokens"] == reference[uid]["thinking_tokens"]
            assert letters(run, key) == letters(tmp_path / "local", point), (run.name, key)
    for summary, verdict in ((local, HONOURED), (openai_run, NO_BUDGET), (anthropic_run, HONOURED)):
        for point in summary["points"]:
            audit = point["audit"]
            assert audit["verdict"] == verdict and audit["errors"] == 0 and audit["never_closed"] == 0
            assert audit["over_budget"] == 0
    for summary in (openai_run, anthropic_run):  # both counts kept, and they agree
        for point in summary["points"]:
            assert point["audit"]["count_compared"] == 4, point["audit"]
            assert point["audit"]["count_disagreements"] == 0, point["audit"]
    # The served runs and the in-process one in one report, each audited.
    markdown = write_report([tmp_path / "local", tmp_path / "openai", tmp_path / "anthropic"],
                            tmp_path / "report").markdown.read_text()
    audit = markdown[markdown.index("Budget audit"):]
    assert all(key in audit for key in ("Eminimal", "Ehigh", "B24_K0", HONOURED, NO_BUDGET))
