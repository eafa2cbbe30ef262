"""A real `m1 serve` process on loopback (transformers backend, default model), shared by the
serving tests, and clients for it. The server is stopped by its own PID at the end."""

from __future__ import annotations

import json

import pytest

from m1.serving.launch import ServerProcess

MODEL = "smollm2-135m"
CONTEXT = 1024
# What `thinking_budget: "auto"` gets: over two option letters, the first probe always reaches 0.5.
SERVER_EARLY_EXIT = {"method": "confidence", "threshold": 0.5, "every": 8}
# reasoning_effort's budgets on the test servers (--effort-table): small, so effort requests are cheap.
EFFORT_TABLE = {"minimal": 4, "low": 8, "medium": {"thinking_budget": 16, "num_extensions": 1}, "high": 24,
                "xhigh": 32}


@pytest.fixture(scope="session")
def effort_table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("effort") / "effort.json"
    path.write_text(json.dumps(EFFORT_TABLE), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def server(default_model_dir, tmp_path_factory, effort_table_file):
    log = tmp_path_factory.mktemp("m1-serve") / "server.log"
    # A small context and body limit keep the over-long-prompt and 413 tests cheap.
    with ServerProcess(["--model", MODEL, "--backend", "transformers", "--max-batch-size", "8",
                        "--max-context", str(CONTEXT), "--max-body-bytes", "200000",
                        "--early-exit", json.dumps(SERVER_EARLY_EXIT), "--effort-table", str(effort_table_file)],
                       log_path=log, env={"M1_API_KEY": ""}) as process:
        yield process


@pytest.fixture(scope="session")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=120) as session:
        yield session
