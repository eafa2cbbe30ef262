"""`m1 eval`: configs, the run directory, and resuming a run killed with SIGKILL mid-way."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from m1.cli import votes_table
from m1.config import load_config
from m1.data.errors import DataError
from m1.evaluation.audit import HONOURED
from m1.evaluation.config import EvalConfig
from m1.evaluation.report import write_report
from m1.evaluation.runner import BUNDLED_SAMPLE, run_eval

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "configs" / "eval").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_shipped_eval_preset_validates(preset: Path) -> None:
    config = load_config(EvalConfig, preset)
    assert config.grid_points()
    text = preset.read_text()
    assert text.startswith("#") and "m1 eval" in text  # says which recipe it drives and how


def test_paper_grids() -> None:
    sweep = load_config(EvalConfig, REPO / "configs/eval/budget_sweep.yaml")
    assert [p.budget for p in sweep.grid_points()] == [128, 256, 512, 1024, 2048, 4096, 8192]
    forcing = load_config(EvalConfig, REPO / "configs/eval/budget_forcing.yaml")
    assert {(p.budget, p.extensions) for p in forcing.grid_points()} == {
        (b, k) for b in (2048, 4096, 8192) for k in (0, 1, 2, 4, 6, 8)}
    baselines = load_config(EvalConfig, REPO / "configs/eval/baselines.yaml")
    assert [p.key for p in baselines.grid_points()] == ["nothink", "nothink_S1"]


def test_overrides_and_unknown_keys(tmp_path: Path) -> None:
    config = load_config(EvalConfig, REPO / "configs/eval/budget_sweep.yaml",
                         ["per_source=3", "grid.max_thinking_tokens=[64, 128]", "policy.min_thinking_tokens=10"])
    assert config.per_source == 3 and [p.budget for p in config.grid_points()] == [64, 128]
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: x\nbudgets: [1, 2]\n")
    with pytest.raises(DataError) as caught:
        load_config(EvalConfig, bad)
    assert "unknown key 'budgets'" in str(caught.value) and str(bad) in str(caught.value)
    with pytest.raises(DataError, match="grid.max_thinking_tokens"):
        load_config(EvalConfig, None, ["grid.max_thinking_tokens=[0]"])
    with pytest.raises(DataError, match="policy"):
        load_config(EvalConfig, None, ["policy.extension_str="])


def test_identity_ignores_location_but_not_settings() -> None:
    a = load_config(EvalConfig, None, ["out_dir=/tmp/a"])
    b = load_config(EvalConfig, None, ["out_dir=/tmp/b"])
    c = load_config(EvalConfig, None, ["seed=7"])
    assert a.identity() == b.identity() != c.identity()


def tiny_overrides(model_dir: Path, out: Path, **extra: str) -> list[str]:
    options = {"model": str(model_dir), "data": str(BUNDLED_SAMPLE), "out_dir": str(out), "name": "tiny",
               "grid.max_thinking_tokens": "[4, 12]", "grid.num_extensions": "[0, 1]",
               "policy.max_answer_tokens": "3", "backend_options": "{batch_size: 2}"} | extra
    return [f"{k}={v}" for k, v in options.items()]


def test_run_writes_everything_and_refuses_a_different_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = load_config(EvalConfig, None, tiny_overrides(tiny_model_dir, tmp_path))
    summary = run_eval(config)
    root = tmp_path / "tiny"
    assert [p["point"] for p in summary["points"]] == ["B4_K0", "B4_K1", "B12_K0", "B12_K1"]
    for point in summary["points"]:
        rows = [json.loads(line) for line in (root / "points" / point["point"] / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 18 and len({r["uid"] for r in rows}) == 18
        assert all(r["thinking_tokens"] <= point["budget"] for r in rows)
        # B is a hard cap in m1: its own backend's budgets audit clean, at the point and per source.
        assert point["audit"]["verdict"] == HONOURED and point["audit"]["generations"] == 18
        assert {source["verdict"] for source in point["audit"]["sources"].values()} == {HONOURED}
        point_metrics = json.loads((root / "points" / point["point"] / "metrics.json").read_text())
        assert point_metrics["audit"] == point["audit"]
        assert (root / "points" / point["point"] / "scored.jsonl").exists()
        assert point["strict"]["micro"]["items"] == 18
    assert (root / "config.yaml").exists() and json.loads((root / "run.json").read_text())["finished"]
    # Running again finds nothing to do and gives the same metrics.
    assert run_eval(config)["points"] == summary["points"]
    other = load_config(EvalConfig, None, tiny_overrides(tiny_model_dir, tmp_path, seed="3"))
    with pytest.raises(DataError, match="holds a different config"):
        run_eval(other)


def without_wall_time(points: list[dict]) -> list[dict]:
    """Point summaries less the wall time (a measurement, and the call a kill cut short is not in
    it), with calibration's figures to 6 places (the answer read's forward depends on the batch's padding)."""
    wall = {"wall_seconds", "wall_seconds_per_item"}
    return [point | {"usage": {k: v for k, v in point["usage"].items() if k not in wall}}
            | ({"calibration": rounded(point["calibration"])} if "calibration" in point else {}) for point in points]


def rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return [rounded(v) for v in value] if isinstance(value, list) else value


def test_kill_minus_nine_then_resume_gives_identical_metrics(tiny_model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from m1.cli import app

    # Six items over two points: enough for the kill to land mid-run (three rows of the first
    # point done) and for the resumed run to finish both points. Only the killed run needs a
    # process of its own; resuming and the clean run go through the same CLI in this one.
    six = {"grid.max_thinking_tokens": "[24]", "backend_options": "{batch_size: 1}", "limit": "6"}
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "killed", **six)
    predictions = tmp_path / "killed" / "tiny" / "points" / "B24_K0" / "predictions.jsonl"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "m1.cli", "eval", *overrides], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if predictions.exists() and len(predictions.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = sum(len(path.read_text().splitlines()) for path in predictions.parents[1].glob("*/predictions.jsonl"))
    assert 3 <= done_before < 6 * 2, "the kill should land mid-run"

    resumed = CliRunner().invoke(app, ["eval", *overrides])
    assert resumed.exit_code == 0, resumed.output
    assert "generations to do" in resumed.output

    clean = CliRunner().invoke(app, ["eval", "--json", *tiny_overrides(tiny_model_dir, tmp_path / "clean", **six)])
    assert clean.exit_code == 0, clean.output
    killed_metrics = json.loads((tmp_path / "killed" / "tiny" / "metrics.json").read_text())
    clean_metrics = json.loads((tmp_path / "clean" / "tiny" / "metrics.json").read_text())
    assert without_wall_time(killed_metrics["points"]) == without_wall_time(clean_metrics["points"])
    printed = json.loads(clean.stdout)  # --json: stdout holds the summary alone, progress went to stderr
    assert printed["points"] == clean_metrics["points"] and printed["run_dir"] == str(tmp_path / "clean" / "tiny")
    lines = predictions.read_text().splitlines()
    assert len(lines) == len({json.loads(line)["uid"] for line in lines}) == 6


# top_p left at 1: the transformers backend's nucleus cut sorts the whole vocabulary at every token.
SAMPLED = {"policy.sampling.temperature": "0.7", "limit": "4", "grid.max_thinking_tokens": "[24]",
           "grid.num_extensions": "[0]"}


def point_rows(root: Path, key: str) -> list[dict]:
    """A point's predictions as the store returns them (item, then sample order), less the clock."""
    rows = [json.loads(line) for line in (root / "points" / key / "predictions.jsonl").read_text().splitlines()]
    order = [json.loads(line)["uid"] for line in (root / "items.jsonl").read_text().splitlines()]
    rows.sort(key=lambda row: (order.index(row["uid"]), row.get("sample", 0)))
    return [{k: v for k, v in row.items() if k != "batch_seconds"} | without_clock(row) for row in rows]


def without_clock(row: dict) -> dict:
    """The answer read less its timing; its probabilities to 4 places (a batch pads the forward)."""
    read = row.get("answer_read")
    if read is None:
        return {}
    return {"answer_read": {k: v for k, v in read.items() if k != "seconds"} | {
        "probability": round(read["probability"], 4), "outside": round(read["outside"], 4),
        "letters": {letter: round(p, 4) for letter, p in read["letters"].items()}}}


def test_a_sample_draws_the_same_whatever_its_point_or_batch(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    runs = {}
    for batch in (1, 3):
        overrides = tiny_overrides(tiny_model_dir, tmp_path / f"batch{batch}", **SAMPLED,
                                   **{"grid.samples": "[1, 3]", "backend_options": f"{{batch_size: {batch}}}"})
        summary = run_eval(load_config(EvalConfig, None, overrides))
        # The one-sample point is its twin's sample 0, copied: 4 items x 3 samples are drawn, no more.
        assert "12 generations to do" in capsys.readouterr().out
        assert [(p["point"], p["samples"]) for p in summary["points"]] == [("B24_K0", 1), ("B24_K0_N3", 3)]
        runs[batch] = {key: point_rows(tmp_path / f"batch{batch}" / "tiny", key) for key in ("B24_K0", "B24_K0_N3")}
    single, several = runs[1]["B24_K0"], runs[1]["B24_K0_N3"]
    assert [(r["uid"], r["sample"]) for r in several] == [(r["uid"], s) for r in single for s in range(3)]
    # The draw is a function of (run seed, item, sample): batch mates and the point's N change nothing.
    assert runs[3] == runs[1]
    assert [{k: v for k, v in r.items() if k != "sample"} for r in several if r["sample"] == 0] == single
    # ... and those are the draws a one-sample grid makes itself.
    alone = tiny_overrides(tiny_model_dir, tmp_path / "alone", **SAMPLED, **{"backend_options": "{batch_size: 1}"})
    run_eval(load_config(EvalConfig, None, alone))
    assert point_rows(tmp_path / "alone" / "tiny", "B24_K0") == single
    for first in range(0, len(several), 3):
        assert len({r["thinking"] for r in several[first:first + 3]}) == 3  # an item's samples differ

    # The finished run, scored again (nothing left to do), with the votes `m1 eval` prints, and as
    # `m1 report` draws it. The table is rendered at a fixed width: the test never reads the terminal's.
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "batch1", **SAMPLED,
                               **{"grid.samples": "[1, 3]", "backend_options": "{batch_size: 1}"})
    again = run_eval(load_config(EvalConfig, None, overrides))
    assert "0 generations to do" in capsys.readouterr().out
    table = Console(width=200, file=io.StringIO(), record=True)
    table.print(votes_table(again))
    printed = table.export_text()
    assert "B24_K0_N3:majority" in printed and "B24_K0_N3:esc2" in printed, printed
    page = write_report([tmp_path / "batch1" / "tiny"], tmp_path / "report").html.read_text()
    for section in ("Accuracy against compute", "Calibration and abstention", "B24_K0_N3:esc2"):
        assert section in page


def test_kill_minus_nine_in_a_sampled_run_then_resume_gives_the_same_rows(tiny_model_dir: Path,
                                                                          tmp_path: Path) -> None:
    # batch_size 2: the resumed run batches what was left otherwise than an uninterrupted run does.
    sampled = SAMPLED | {"grid.samples": "[3]", "backend_options": "{batch_size: 2}"}
    overrides = tiny_overrides(tiny_model_dir, tmp_path / "killed", **sampled)
    predictions = tmp_path / "killed" / "tiny" / "points" / "B24_K0_N3" / "predictions.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "m1.cli", "eval", *overrides], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (predictions.exists() and len(predictions.read_text().splitlines()) >= 2):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(predictions.read_text().splitlines())
    assert 2 <= done_before < 4 * 3, "the kill should land mid-run"

    resumed = run_eval(load_config(EvalConfig, None, overrides))
    clean = run_eval(load_config(EvalConfig, None, tiny_overrides(tiny_model_dir, tmp_path / "clean", **sampled)))
    assert point_rows(tmp_path / "killed" / "tiny", "B24_K0_N3") == point_rows(tmp_path / "clean" / "tiny", "B24_K0_N3")
    assert len(point_rows(tmp_path / "killed" / "tiny", "B24_K0_N3")) == 4 * 3
    assert without_wall_time(resumed["points"]) == without_wall_time(clean["points"])
    scored = [[json.loads(line) for line in (tmp_path / run / "tiny" / "points" / "B24_K0_N3" / "scored.jsonl")
               .read_text().splitlines()] for run in ("killed", "clean")]
    rounded = [[row | {f"confidence_{mode}": round(row[f"confidence_{mode}"], 4) for mode in ("strict", "reference")}
                for row in rows] for rows in scored]
    assert rounded[0] == rounded[1]
