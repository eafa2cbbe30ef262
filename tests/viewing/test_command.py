"""`m1 view` on the command line: a folder that is not a run is named with what it lacks (exit 2,
no traceback), a host other machines reach needs a key, the port is 8765 or a free one (with a
warning that the report's links expect 8765), and the real command indexes a run, prints its
URL and serves it (to its own Host names only) until stopped by its own PID."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m1.cli import app
from m1.data.errors import DataError
from m1.evaluation.view_links import VIEW_PORT
from m1.viewing.command import choose_port
from m1.viewing.index import INDEX_NAME

from .stores import Answer, make_items, make_run

ITEMS = make_items({"S1": 3})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"), "cli", ITEMS, {"B16_K1": {i.uid: [Answer("A")] for i in ITEMS}},
                    [16])


def test_a_folder_that_is_not_a_run_exits_2_naming_it(tmp_path: Path, run_dir: Path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["view", str(run_dir), str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'empty'}: not an m1 eval run: run.json, config.yaml, items.jsonl missing" in result.output
    assert "Traceback" not in result.output


def test_another_host_needs_a_key(run_dir: Path, monkeypatch):
    monkeypatch.delenv("M1_TEST_VIEW_KEY", raising=False)
    result = CliRunner().invoke(app, ["view", str(run_dir), "--host", "0.0.0.0", "--api-key-env", "M1_TEST_VIEW_KEY"])
    assert result.exit_code == 2 and "$M1_TEST_VIEW_KEY is empty" in result.output


def test_the_port_is_8765_or_a_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(DataError, match=f"port {busy} on 127.0.0.1 is in use"):
            choose_port("127.0.0.1", busy)
        chosen = choose_port("127.0.0.1", None)
        assert chosen != busy and (chosen == VIEW_PORT or chosen > 1024)


def test_without_port_8765_the_command_warns_that_report_links_miss_it(run_dir: Path, monkeypatch):
    import uvicorn
    from fastapi.testclient import TestClient

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    monkeypatch.setenv("M1_API_KEY", "")
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", VIEW_PORT))
        except OSError:  # something else holds it: the same case
            pass
        result = CliRunner().invoke(app, ["view", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert served["port"] != VIEW_PORT and f"http://127.0.0.1:{served['port']}/items" in result.output
    assert (f"warning: port {VIEW_PORT} on 127.0.0.1 is taken, so m1 view listens on port {served['port']}; "
            f"the links in report.html (m1 report) expect port {VIEW_PORT}") in result.output
    # It answers its own Host names only.
    assert TestClient(served["app"]).get("/api/items").status_code == 400
    assert TestClient(served["app"], base_url=f"http://127.0.0.1:{served['port']}").get("/api/items").status_code == 200


def test_the_command_serves_the_run_at_the_printed_url(run_dir: Path, tmp_path: Path):
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).parents[2] / "src"),
                                                                  os.environ.get("PYTHONPATH")) if p),
                        "M1_API_KEY": ""}
    log = tmp_path / "view.log"
    with log.open("w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "m1.cli", "view", str(run_dir)], stdout=handle,
                                   stderr=subprocess.STDOUT, env=env)
    try:
        deadline, url = time.monotonic() + 60, None
        while url is None:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            found = re.search(r"m1 view: (http://127\.0\.0\.1:\d+/items)", log.read_text())
            url = found.group(1) if found else time.sleep(0.2)
        for _ in range(100):
            try:
                with urllib.request.urlopen(url.replace("/items", "/api/items"), timeout=5) as response:
                    assert response.status == 200 and b'"total":3' in response.read()
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"{url} did not answer; log:\n{log.read_text()}")
        assert (run_dir / INDEX_NAME).exists()
        # Another site's name (DNS rebinding) is refused.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, headers={"Host": "evil.example"}), timeout=5)
        assert refused.value.code == 400
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
