"""The curation recipe end to end: presets, the run directory, the funnel, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from m1.cli import app
from m1.config import load_config
from m1.curation.config import CurationConfig
from m1.curation.pipeline import run_pipeline, status
from m1.curation.stage import read_manifest
from m1.data.errors import DataError
from m1.data.suite import SUITE_FILE_NAME, load_suite

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "configs" / "curate").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_shipped_curation_preset_validates(preset: Path) -> None:
    config = load_config(CurationConfig, preset)
    assert config.enabled_sections()[0] == "ingest"
    text = preset.read_text()
    assert text.startswith("#") and "m1 curate run" in text  # says what it drives and how


def test_bad_config_errors_name_the_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ningest:\n  pools: [{path: a.json}]\ndedup:\n  treshold: 0.9\n")
    with pytest.raises(DataError, match=r"bad\.yaml.*field 'dedup\.treshold'.*unknown key.*valid keys: .*threshold"):
        load_config(CurationConfig, path)
    path.write_text("name: x\ningest:\n  pools: [{path: a.json}]\n")
    with pytest.raises(DataError, match=r"field 'dedup\.threshold'.*less than or equal to 1"):
        load_config(CurationConfig, path, ["dedup.threshold=2"])
    result = CliRunner().invoke(app, ["curate", "run", str(path), "select.method=best"])
    assert result.exit_code == 2 and "select.method" in result.output


def huatuo_config(tmp_path: Path, shared_data: Path, suite: Path | str, **sections) -> Path:
    """A huatuo-demo run writing under tmp_path; `sections` replace or add config sections."""
    config = yaml.safe_load((REPO / "configs/curate/huatuo_demo.yaml").read_text())
    config["out_dir"] = str(tmp_path / "runs")
    config["decontaminate"]["suite"] = str(suite)
    config.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_huatuo_demo_preset_end_to_end(shared_data: Path, huatuo_demo_run: Path) -> None:
    """The real demo chains against the full suite: a duplicate and the 3 evaluation items go."""
    run_dir = huatuo_demo_run
    funnel = status(run_dir)
    assert [(s["dir"], s["rows_in"], s["rows_out"], s["dropped"]) for s in funnel["stages"]] == [
        ("01_ingest", 198, 198, {}),
        # "A 2-year-old child …" and "A 2 year old child …" with the same options in another order.
        ("02_dedup", 198, 197, {"exact duplicate": 1}),
        ("03_decontaminate", 197, 194, {"contaminated: MedMCQA_validation": 3}),
        ("10_render", 194, 194, {}),
    ]
    suite = load_suite(shared_data / "eval" / SUITE_FILE_NAME, sources=["MedMCQA_validation"])["MedMCQA_validation"]
    expected_keys = {f"MedMCQA_validation/{suite[i].uid}" for i in (700, 3946, 4042)}
    dropped = [json.loads(line) for line in (run_dir / "03_decontaminate/dropped.jsonl").read_text().splitlines()]
    assert {row["detail"].split(" ")[0] for row in dropped} == expected_keys

    records = [json.loads(line) for line in (run_dir / "sft.jsonl").read_text().splitlines()]
    assert len(records) == funnel["outputs"]["records"] == 194
    demo = json.loads((shared_data / "pools/huatuo_demo/demo_data.json").read_text())
    first, chain = records[0], demo[0]
    option_lines = first["prompt"].split("\n")[-1 - len(chain["options"]):-1]
    suffix = "Return your final response within \\boxed{}."
    assert first["prompt"] == "\n".join([chain["question"], *option_lines, suffix])
    assert [line[:3] for line in option_lines] == ["A. ", "B. ", "C. ", "D. ", "E. "][:len(option_lines)]
    assert sorted(line[3:] for line in option_lines) == sorted(chain["options"].values())  # shuffled, all there
    assert first["text"] == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{first['prompt']}<|im_end|>\n"
        f"<|im_start|>assistant\n<|im_start|>think\n{chain['Complex_CoT'].strip()}\n<|im_start|>answer\n"
        f"Answer: {chain['Response'].strip()}<|im_end|>\n")


def test_changed_config_redoes_exactly_the_downstream_stages(shared_data: Path, small_suite: Path,
                                                             tmp_path: Path) -> None:
    # The paper's two decontaminations: here the first allows MedMCQA, the final one does not.
    path = huatuo_config(tmp_path, shared_data, small_suite,
                         decontaminate={"suite": str(small_suite), "exclude_eval_sources": ["MedMCQA_validation"]},
                         decontaminate_final={"suite": str(small_suite)})
    run_dir = run_pipeline(load_config(CurationConfig, path))
    funnel = {s["dir"]: s for s in status(run_dir)["stages"]}
    assert list(funnel) == ["01_ingest", "02_dedup", "03_decontaminate", "07_decontaminate-final", "10_render"]
    assert funnel["03_decontaminate"]["dropped"] == {}
    assert funnel["07_decontaminate-final"]["dropped"] == {"contaminated: MedMCQA_validation": 3}
    printed = json.loads(CliRunner().invoke(app, ["curate", "status", str(run_dir), "--json"]).stdout)
    assert {s["dir"]: s["dropped"] for s in printed["stages"]}["07_decontaminate-final"] == {
        "contaminated: MedMCQA_validation": 3}
    written = {name: (run_dir / name / "manifest.json").stat().st_mtime_ns for name in funnel}
    fingerprints = {name: s["fingerprint"] for name, s in funnel.items()}

    run_pipeline(load_config(CurationConfig, path))  # nothing changed: nothing redone
    assert {name: (run_dir / name / "manifest.json").stat().st_mtime_ns for name in funnel} == written

    run_pipeline(load_config(CurationConfig, path, ["dedup.threshold=0.9"]))
    after = {s["dir"]: s["fingerprint"] for s in status(run_dir)["stages"]}
    assert after["01_ingest"] == fingerprints["01_ingest"]
    assert (run_dir / "01_ingest/manifest.json").stat().st_mtime_ns == written["01_ingest"]
    assert all(after[name] != fingerprints[name] for name in list(funnel)[1:])  # dedup and all after it
    assert read_manifest(run_dir / "02_dedup")["params"]["threshold"] == 0.9


def count_lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


@pytest.mark.slow
def test_sigkill_mid_stage_then_resume(shared_data: Path, small_suite: Path, tmp_path: Path) -> None:
    """A real `m1 curate run` killed in the middle of decontamination resumes from its rows on disk."""
    path = huatuo_config(tmp_path, shared_data, small_suite)
    # One row per step, so that the stage is mid-way for long enough to be caught there.
    command = [sys.executable, "-m", "m1.cli", "curate", "run", str(path), "decontaminate.batch_size=1"]
    stage_dir = tmp_path / "runs/huatuo-demo/03_decontaminate"
    env = os.environ | {"COLUMNS": "200"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300
        while count_lines(stage_dir / "kept.jsonl") + count_lines(stage_dir / "dropped.jsonl") < 20:
            assert process.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline, "the run never reached the decontamination stage"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert not (stage_dir / "manifest.json").exists()
    before = {name: (stage_dir / name).read_text() if (stage_dir / name).exists() else ""
              for name in ("kept.jsonl", "dropped.jsonl")}
    partial = {s["dir"]: s for s in status(tmp_path / "runs/huatuo-demo")["stages"]}
    assert partial["03_decontaminate"]["state"] == "partial" and partial["10_render"]["state"] == "pending"

    resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "03_decontaminate" in resumed.stdout and "194 SFT records" in resumed.stdout
    for name, text in before.items():
        after = (stage_dir / name).read_text()
        # Rows finished before the kill were not redone: the file goes on from where it was cut
        # (a line cut short by the kill is dropped on reading and its row done again).
        complete = text[:text.rfind("\n") + 1]
        assert after.startswith(complete)
        uids = [json.loads(line)["uid"] for line in after.splitlines() if line.endswith("}")]
        assert len(uids) == len(set(uids))

    clean = load_config(CurationConfig, path, [f"out_dir={tmp_path / 'clean'}"])
    clean_dir = run_pipeline(clean)
    assert (clean_dir / "sft.jsonl").read_text() == (tmp_path / "runs/huatuo-demo/sft.jsonl").read_text()
    report = CliRunner().invoke(app, ["curate", "status", str(tmp_path / "runs/huatuo-demo"), "--json"])
    assert json.loads(report.output)["stages"][2]["rows_out"] == 194
