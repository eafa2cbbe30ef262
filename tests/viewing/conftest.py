"""Real runs of the default model for the viewer's API and browser tests, made once per session by
`m1 eval` itself: the same six bundled items, budgets 16 and 32 with one "Wait" (SmolLM2 often stops
thinking at once, so most items get the Wait inserted), and beside it early exit at budget 32 (a
minimum of 16 gives its probes thinking to read), so two runs can be shown side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from m1.auth import LOOPBACK_HOSTS
from m1.evaluation.runner import BUNDLED_SAMPLE
from m1.viewing import Catalog, open_runs
from m1.viewing.app import create_app

COMMON = ["limit=6", "preset=think-tags", "calibration=false", "policy.max_answer_tokens=8", "grid.num_extensions=[1]",
          "backend_options={batch_size: 6}"]
RUNS = {
    "budget": ["grid.max_thinking_tokens=[16, 32]"],
    "early": ["grid.max_thinking_tokens=[32]", "policy.min_thinking_tokens=16",
              "grid.early_exit=[{method: confidence, threshold: 0.5, every: 8}]"],
}


@pytest.fixture(scope="session")
def real_runs(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from typer.testing import CliRunner

    from m1.cli import app

    out = tmp_path_factory.mktemp("real-runs")
    for name, overrides in RUNS.items():
        result = CliRunner().invoke(app, ["eval", f"model={default_model_dir}", f"data={BUNDLED_SAMPLE}",
                                          f"out_dir={out}", f"name={name}", *COMMON, *overrides])
        assert result.exit_code == 0, result.output
    return {name: out / name for name in RUNS}


def client_for(*roots: Path, api_key: str | None = None) -> TestClient:
    """The viewer's app over the runs at `roots`, as `m1 view` serves it, answering the test
    client's Host ("testserver") besides the loopback names."""
    return TestClient(create_app(Catalog(open_runs(roots)), api_key=api_key, hosts=(*LOOPBACK_HOSTS, "testserver")))
