"""`m1 label-domains` end to end against a real HTTP chat server (`tests/curation/fault_server.py`):
the items are the ones `m1 eval` would select, the labels file is written, a second run pays
nothing, a larger selection pays only for its new items, and a run killed with SIGKILL resumes
without asking again for the items it had finished."""

from __future__ import annotations

import hashlib
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

from curation.fault_server import FaultServer
from m1.cli import app
from m1.config import load_config
from m1.curation.mesh import load_qualifiers
from m1.data.suite import SUITE_FILE_NAME
from m1.engine.prompt import user_message
from m1.evaluation.config import EvalConfig
from m1.evaluation.domains import LABEL_FIELDS, load_labels
from m1.evaluation.domains.labelling import DomainsConfig
from m1.evaluation.runner import select_items
from m1.io import sha256_file

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "configs" / "domains").glob("*.yaml"))


def digest(text: str) -> int:
    return int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16)


def reply(body: dict) -> str:
    """The fake classifier: a code chosen by the question, and no code at all for about a quarter."""
    question = body["messages"][1]["content"]
    if digest(question) % 4 == 0:
        return "This one is hard to place."
    return f"It is about this qualifier.\nCode: {digest(question) % 76:02d}"


def write_config(tmp_path: Path, server: FaultServer, name: str = "t", **fields) -> Path:
    client = {"model": "judge", "base_url": server.base_url, "max_tokens": 32, "timeout": 5, "max_retries": 0}
    config = {"name": name, "data": fields.pop("data"), "per_source": 2, "seed": 7, "out_dir": str(tmp_path / "runs"),
              "classify": {"client": client, "workers": 2, "batch_size": 4, "max_attempts": 1}} | fields
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(path: Path, *overrides: str) -> dict:
    result = CliRunner().invoke(app, ["label-domains", str(path), "--json", *overrides])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def eval_items(data: Path, **selection):
    return select_items(EvalConfig(data=str(data), **selection), data)


def prompt_of(item) -> str:
    return user_message(item.question, item.options, suffix=None)


@pytest.fixture()
def suite(shared_data: Path) -> Path:
    return shared_data / "eval" / SUITE_FILE_NAME


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_shipped_domains_preset_validates(preset: Path) -> None:
    config = load_config(DomainsConfig, preset)
    assert config.labels_path.suffix == ".jsonl" and config.classify.client.model
    text = preset.read_text()
    assert text.startswith("#") and "m1 label-domains" in text  # says which recipe it drives and how


def test_labels_the_eval_selection_then_pays_nothing_again(tmp_path: Path, suite: Path) -> None:
    qualifiers = {q.code: q.name for q in load_qualifiers()}
    with FaultServer(schedule=lambda body: ["ok"], answer=reply) as server:
        path = write_config(tmp_path, server, data=str(suite))
        first = run(path)
        labels_file = Path(first["file"])
        written = labels_file.read_bytes()
        paid = sum(server.paid.values())
        second = run(path)
        rewritten, asked_after_second = labels_file.read_bytes(), len(server.log)
        wider = run(path, "per_source=3")

    items = eval_items(suite, per_source=2, seed=7)
    lines = [json.loads(line) for line in written.decode().splitlines()]
    assert [line["uid"] for line in lines] == [item.uid for item in items]  # eval's items, in eval's order
    assert all(tuple(line) == LABEL_FIELDS for line in lines)
    by_uid = {item.uid: item for item in items}
    for line in lines:
        item = by_uid[line["uid"]]
        assert line["source"] == item.source and qualifiers[line["code"]] == line["name"]
        readable = digest(prompt_of(item)) % 4 != 0
        assert (line["method"], line["flagged"]) == (("llm", False) if readable else ("fallback", True))
        if readable:
            assert line["code"] == f"{digest(prompt_of(item)) % 76:02d}"
    assert paid == len(items) and first["client"]["requests"] == len(items)
    assert first["labelled"] == len(items) and first["unlabelled"] == []
    assert first["sha256"] == hashlib.sha256(written).hexdigest()

    # The same command again: the finished stage is reused, nothing is asked, the file is the same.
    assert second["client"]["requests"] == 0 and asked_after_second == len(items)
    assert rewritten == written and second["sha256"] == first["sha256"]

    # A larger selection redoes the stage, but only its new items reach the server.
    more = eval_items(suite, per_source=3, seed=7)
    new = [item for item in more if item.uid not in by_uid]
    asked = [prompt for _seq, _key, prompt, _outcome in server.log[asked_after_second:]]
    assert sorted(asked) == sorted(prompt_of(item) for item in new) and new
    assert wider["client"]["cache_hits"] == len(more) - len(new)
    assert list(load_labels(labels_file).names) == [item.uid for item in more]
    assert wider["sha256"] == sha256_file(labels_file) == load_labels(labels_file).sha256
    assert max(server.paid.values()) == 1


def test_items_the_stage_drops_stay_unlabelled(tmp_path: Path, suite: Path) -> None:
    with FaultServer(schedule=lambda body: ["ok"], answer=reply) as server:
        summary = run(write_config(tmp_path, server, data=str(suite)), "classify.fallback=drop")
    items = eval_items(suite, per_source=2, seed=7)
    unreadable = [item.uid for item in items if digest(prompt_of(item)) % 4 == 0]
    assert unreadable and summary["unlabelled"] == unreadable
    coverage = load_labels(summary["file"]).coverage(item.uid for item in items)
    assert coverage["unlabelled"] == unreadable and coverage["labelled"] == len(items) - len(unreadable)


def test_a_killed_run_resumes_without_asking_for_finished_items_again(tmp_path: Path, suite: Path) -> None:
    with FaultServer(schedule=lambda body: ["ok"], answer=reply, delay=0.1) as server:
        path = write_config(tmp_path, server, data=str(suite), classify={
            "client": {"model": "judge", "base_url": server.base_url, "max_tokens": 32, "timeout": 5},
            "workers": 1, "batch_size": 2, "max_attempts": 1})
        kept = tmp_path / "runs" / "t" / "classify" / "kept.jsonl"
        command = [sys.executable, "-m", "m1.cli", "label-domains", str(path)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if kept.exists() and kept.read_text().count("\n") >= 4:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        done_before = {json.loads(line)["uid"] for line in kept.read_text().splitlines()}
        labels_file = tmp_path / "runs" / "t.jsonl"
        assert not labels_file.exists(), "a labels file must only appear once every item is labelled"
        asked_before = len(server.log)

        resumed = run(path)  # in this process: only the killed run needs one of its own
        asked_by_resume = [prompt for _seq, _key, prompt, _outcome in server.log[asked_before:]]
        clean = run(write_config(tmp_path, server, name="clean", data=str(suite)))

    items = eval_items(suite, per_source=2, seed=7)
    assert 4 <= len(done_before) < len(items), "the kill should land mid-run"
    uid_of = {prompt_of(item): item.uid for item in items}
    resumed_uids = {uid_of[prompt] for prompt in asked_by_resume}
    assert not resumed_uids & done_before, "an item finished before the kill was asked again"
    assert resumed_uids | done_before == set(uid_of.values())
    # The resumed run's file is the one an uninterrupted run writes.
    assert resumed["sha256"] == clean["sha256"] == sha256_file(labels_file)
