"""`m1 eval` with early exit on the real default model (transformers backend), end to end at tiny
scale: fixed, exiting and observing points on the same items, the rows' answer trajectories, the
comparison in the summary and `--json`, and the report's settling figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m1.evaluation.report import write_report
from m1.evaluation.runner import BUNDLED_SAMPLE

EVERY, MINIMUM, THRESHOLD = 8, 16, 0.5


@pytest.mark.slow
def test_early_exit_grid_on_the_default_model(default_model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from m1.cli import app

    # SmolLM2 closes its thinking at once: a minimum kept going with "Wait" gives the probes
    # thinking to look at (none before the minimum). batch_size 1, so that a sample's greedy tokens
    # cannot depend on which others share its batch, and fixed and observing points compare exactly.
    # Two items (of two sources): each is generated three times, once per point, one at a time.
    setting = f"{{method: confidence, threshold: {THRESHOLD}, every: {EVERY}"
    overrides = [f"model={default_model_dir}", f"data={BUNDLED_SAMPLE}", f"out_dir={tmp_path}", "name=ee",
                 "per_source=1", "limit=2", "preset=think-tags", "grid.max_thinking_tokens=[40]",
                 "grid.num_extensions=[4]", f"policy.min_thinking_tokens={MINIMUM}", "policy.max_answer_tokens=8",
                 f"grid.early_exit=[null, {setting}}}, {setting}, observe: true}}]", "backend_options={batch_size: 1}"]
    result = CliRunner().invoke(app, ["eval", "--json", *overrides])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [p["point"] for p in summary["points"]] == ["B40_K4", "B40_K4_EE1", "B40_K4_EE2"]

    root = tmp_path / "ee"
    items = {json.loads(line)["uid"]: json.loads(line) for line in (root / "items.jsonl").read_text().splitlines()}
    rows = {key: {r["uid"]: r for r in map(json.loads, (root / "points" / key / "predictions.jsonl").read_text().splitlines())}
            for key in ("B40_K4", "B40_K4_EE1", "B40_K4_EE2")}
    assert all(set(r) == set(items) for r in rows.values()) and len(items) == 2
    for uid, item in items.items():
        fixed, exiting, observing = (rows[key][uid] for key in ("B40_K4", "B40_K4_EE1", "B40_K4_EE2"))
        assert "probes" not in fixed and not fixed["error"]
        # Observing probes the whole thinking and never exits: its thinking is the fixed budget's.
        assert observing["thinking"] == fixed["thinking"] and observing["reply"] == fixed["reply"]
        assert observing["probes"] and observing["thinking_end"] != "early_exit"
        # Exiting thinks the same until it stops, and stops only on a probe that passed the threshold.
        assert fixed["thinking"].startswith(exiting["thinking"])
        assert exiting["thinking_tokens"] <= fixed["thinking_tokens"]
        assert exiting["exit_rule"] == f"confidence >= {THRESHOLD:g}"
        for row in (exiting, observing):
            assert row["probe_tokens"] == sum(p["tokens"] for p in row["probes"]) > 0
            for probe in row["probes"]:
                assert probe["read"] == "letters" and probe["answer"] in item["options"]  # this item's own letters
                assert MINIMUM <= probe["thinking_tokens"] <= 40
        if exiting["thinking_end"] == "early_exit":
            last = exiting["probes"][-1]
            assert last["probability"] >= THRESHOLD and last["thinking_tokens"] == exiting["thinking_tokens"]
        # Up to the exit, both probing points read the same answers at the same places.
        shared = len(exiting["probes"])
        assert [(p["thinking_tokens"], p["answer"]) for p in observing["probes"][:shared]] == [
            (p["thinking_tokens"], p["answer"]) for p in exiting["probes"]]

    comparisons = {c["point"]: c for c in summary["early_exit"]["comparisons"]}
    assert comparisons["B40_K4_EE1"]["fixed"] == comparisons["B40_K4_EE2"]["fixed"] == "B40_K4"
    observed = comparisons["B40_K4_EE2"]["overall"]
    assert observed["tokens_saved_pct"] == 0 and observed["strict"]["difference"] == 0
    exited = comparisons["B40_K4_EE1"]["overall"]
    assert exited["early_exit_rate"] == sum(rows["B40_K4_EE1"][u]["thinking_end"] == "early_exit" for u in items) / 2
    assert exited["tokens_saved_pct"] >= 0
    assert json.loads((root / "metrics.json").read_text())["early_exit"] == summary["early_exit"]

    again = CliRunner().invoke(app, ["eval", *overrides])  # nothing left to generate: scoring and the tables
    assert again.exit_code == 0, again.output
    assert "0 generations to do" in again.output

    paths = write_report([root], tmp_path / "report")
    assert "answer_settling" in {path.stem for path in paths.figures}
    assert "| B40_K4_EE2 | B40_K4 |" in paths.markdown.read_text()
