"""Distill over a misbehaving API (`fault_server.py`): the stage completes, every row is kept or
dropped with a reason, nothing is paid twice, and a run killed with SIGKILL resumes without asking
again for the rows it had finished. The API key never reaches a file or a log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from m1.engine.client import ClientConfig
from m1.curation.distill import Distill, DistillConfig
from m1.curation.stage import DROPPED_FILE, KEPT_FILE, dropped_rows, kept_rows, run_stage

from .fault_server import PLANS, FaultServer
from .servers import synthetic_rows

SECRET = "sk-distill-5b8e2f61c0d94a7e9b3c1d2e4f6a8b0c"
REASONS = {"teacher reply truncated (finish_reason=length)", "api error after 3 retries: 500",
           "teacher reply has no reasoning"}

RUN_STAGE = """
import json, sys
from pathlib import Path
from m1.curation.distill import Distill, DistillConfig
from m1.curation.stage import run_stage

rows = json.loads(Path(sys.argv[1]).read_text())
run_dir = Path(sys.argv[2])
config = DistillConfig.model_validate_json(sys.argv[3])
manifest = run_stage(Distill(config, run_dir), rows, run_dir / "distill", upstream="test")
print(json.dumps(manifest["extra"]))
"""


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("M1_TEST_API_KEY", SECRET)


def distill_config(server: FaultServer, *, workers: int = 4, batch_size: int = 8) -> DistillConfig:
    teacher = ClientConfig(model="teacher-x", base_url=server.base_url, api_key_env="M1_TEST_API_KEY", max_tokens=64,
                           timeout=0.5, max_retries=3, backoff_initial=0.01, backoff_max=0.05,
                           price_input_per_million=0.55, price_output_per_million=2.19)
    return DistillConfig(teacher=teacher, workers=workers, batch_size=batch_size)


def assert_no_secret(*places) -> None:
    for place in places:
        files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
        for path in files:
            assert SECRET not in path.read_text(errors="replace"), f"the API key leaked into {path}"


def test_distill_survives_a_faulty_api_without_losing_rows_or_paying_twice(tmp_path):
    rows = synthetic_rows(30)
    with FaultServer(timeout_sleep=1.0) as server:
        manifest = run_stage(Distill(distill_config(server), tmp_path), rows, tmp_path / "distill", upstream="u")
        paid_first = sum(server.paid.values())
        # Same requests under a changed upstream: the stage is redone, the replies come from the cache.
        rerun = run_stage(Distill(distill_config(server), tmp_path), rows, tmp_path / "distill-again", upstream="v")

    kept, dropped = kept_rows(tmp_path / "distill"), dropped_rows(tmp_path / "distill")
    assert sorted(r["uid"] for r in kept + dropped) == sorted(r["uid"] for r in rows)
    assert manifest["rows_in"] == 30 and manifest["rows_out"] == len(kept)
    assert set(manifest["dropped"]) == REASONS
    per_plan = 30 // len(PLANS)
    assert manifest["dropped"] == {reason: per_plan for reason in REASONS}

    for row in kept:
        teacher = row["teacher"]
        assert teacher["reasoning"].startswith("Let me think") and "\\boxed{" in teacher["content"]
        assert teacher["finish_reason"] == "stop" and teacher["model"] == "teacher-x" and not teacher["cached"]
        assert teacher["usage"]["completion_tokens"] > 0 and teacher["cost"] > 0

    stats = manifest["extra"]["teacher"]
    assert max(server.paid.values()) == 1, "a request was paid twice"
    assert stats["replies"] == paid_first == len(kept) + 2 * per_plan  # truncated and reasoning-less are paid too
    assert {"429", "500", "timeout", "malformed"} <= set(stats["errors"])
    assert stats["retries"] > 0 and stats["cost"] > 0 and stats["truncated"] == per_plan

    again = rerun["extra"]["teacher"]
    assert again["replies"] == 0 and again["cache_hits"] == paid_first
    assert sum(server.paid.values()) == paid_first
    assert all(row["teacher"]["cached"] for row in kept_rows(tmp_path / "distill-again"))
    assert_no_secret(tmp_path)


def test_a_killed_distill_run_resumes_without_asking_for_finished_rows_again(tmp_path):
    rows = synthetic_rows(30)
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "run_stage.py").write_text(RUN_STAGE)
    stage_dir = tmp_path / "run" / "distill"
    # Good but slow replies (the faults are the other test's subject): the kill lands mid-run.
    with FaultServer(schedule=lambda body: ["ok"], delay=0.1) as server:
        config = distill_config(server, workers=2, batch_size=2)
        command = [sys.executable, str(tmp_path / "run_stage.py"), str(tmp_path / "rows.json"), str(tmp_path / "run"),
                   config.model_dump_json()]
        with (tmp_path / "first.log").open("w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
            try:
                while finished(stage_dir) < 8 and process.poll() is None:
                    time.sleep(0.05)
            finally:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        assert process.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
        done_before = {row["uid"] for row in kept_rows(stage_dir) + dropped_rows(stage_dir)}
        assert 8 <= len(done_before) < 30
        requests_before = len(server.log)

        with (tmp_path / "second.log").open("w") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(), check=True)

    kept, dropped = kept_rows(stage_dir), dropped_rows(stage_dir)
    assert sorted(r["uid"] for r in kept + dropped) == sorted(r["uid"] for r in rows)
    assert json.loads((stage_dir / "manifest.json").read_text())["rows_in"] == 30

    prompt_of = {row["prompt"]: row["uid"] for row in rows}
    asked_after = {prompt_of[prompt] for _seq, _key, prompt, _outcome in server.log[requests_before:]}
    assert not asked_after & done_before, "a row finished before the kill was asked again"
    # Only requests in flight at the moment of the kill (at most one per worker) can be paid twice.
    twice = [key for key, n in server.paid.items() if n > 1]
    assert len(twice) <= 2
    assert_no_secret(tmp_path / "run", tmp_path / "first.log", tmp_path / "second.log")


def finished(stage_dir) -> int:
    """Rows written so far (complete lines only)."""
    count = 0
    for name in (KEPT_FILE, DROPPED_FILE):
        path = stage_dir / name
        if path.exists():
            count += Counter(path.read_text())["\n"]
    return count


@pytest.mark.parametrize("existing", ["keep", "replace"])
def test_a_row_that_already_has_a_teacher_section_keeps_it_unless_told(tmp_path, existing):
    rows = synthetic_rows(3)
    chain = {"reasoning": "The demo chain.", "content": "Final answer: B", "model": "huatuo-demo"}
    rows[1] = rows[1] | {"teacher": chain}
    with FaultServer(schedule=lambda body: ["ok"]) as server:
        config = distill_config(server).model_copy(update={"existing": existing})
        manifest = run_stage(Distill(config, tmp_path), rows, tmp_path / "distill", upstream="u")
    kept = {row["uid"]: row for row in kept_rows(tmp_path / "distill")}
    assert manifest["rows_out"] == 3
    if existing == "keep":
        assert kept[rows[1]["uid"]]["teacher"] == chain and len(server.bodies) == 2
        assert kept[rows[1]["uid"]]["distill"] == "kept existing teacher" and "distill" not in kept[rows[0]["uid"]]
        assert manifest["extra"]["kept_existing"] == 1 and manifest["extra"]["replaced_existing"] == 0
    else:
        assert kept[rows[1]["uid"]]["teacher"]["model"] == "teacher-x" and len(server.bodies) == 3
        assert kept[rows[1]["uid"]]["previous_teacher"] == chain
        assert manifest["extra"]["kept_existing"] == 0 and manifest["extra"]["replaced_existing"] == 1
