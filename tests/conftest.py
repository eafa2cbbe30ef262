"""Shared fixtures: where the real data lives, and a skip with a reason where it does not."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from m1.data.suite import shared_data_dir

# Run first: the closed loop (curate, train, evaluate on the CPU) took 83 s alone and 120-130 s
# once the session's vLLM engine and server had started (measured on the 2-core machine; both sit
# idle by then, the cause is not known). First, it runs before any of them.
FIRST = ("tests/training/test_closed_loop.py",)


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))  # stable: the rest keep their order

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (or $M1_SHARED_DATA). CI always has it; elsewhere the test is skipped."""
    found = shared_data_dir()
    if found is None:
        pytest.skip("real data not found: put the shared data folder at ../shared/data or set M1_SHARED_DATA")
    return found


@pytest.fixture()
def fixtures() -> Path:
    return FIXTURES


@dataclass(frozen=True)
class Chromium:
    """The system's Chromium and the flags it needs headless on these offline, sandbox-less machines
    (no GPU, no network of its own, a small /dev/shm)."""

    binary: str
    flags: tuple[str, ...] = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              "--disable-dev-shm-usage", "--hide-scrollbars")


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """The browser tests' Chromium (the report's, m1 view's); skipped where there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return Chromium(found)
    pytest.skip("no chromium on PATH: install it (apt-get install -y chromium) to check pages in a browser")


@pytest.fixture(scope="session")
def huatuo_demo_run(shared_data: Path, tmp_path_factory) -> Path:
    """The shipped demo curation (configs/curate/huatuo_demo.yaml) on the real data, run once: the
    curation test checks its funnel and records, the closed loop trains on them. Read it, never write."""
    from rich.console import Console

    from m1.config import load_config
    from m1.curation.config import CurationConfig
    from m1.curation.pipeline import run_pipeline

    preset = Path(__file__).resolve().parents[1] / "configs" / "curate" / "huatuo_demo.yaml"
    config = load_config(CurationConfig, preset, [f"out_dir={tmp_path_factory.mktemp('curate')}"])
    return run_pipeline(config, Console(quiet=True))


# Models: the real default model, and a tiny random model with its tokenizer. The tiny model never
# stops on its own, so it exercises budgets being hit; the real SmolLM2 stops its thinking at once,
# so it exercises extensions and minimum thinking. Both matter.


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    from m1.engine.default_model import resolve_model

    return Path(resolve_model("smollm2-135m"))


@pytest.fixture(scope="session")
def smol_backend(default_model_dir: Path):
    from m1.engine.backends.hf import TransformersBackend

    return TransformersBackend(str(default_model_dir), batch_size=8, keep_trace=True)


@pytest.fixture(scope="session")
def tiny_backend(default_model_dir: Path):
    """A 2-layer random Llama with the default model's tokenizer: fast, and it rarely stops."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from m1.engine.backends.base import load_tokenizer
    from m1.engine.backends.hf import TransformersBackend

    tokenizer = load_tokenizer(str(default_model_dir))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    return TransformersBackend.from_objects(model, tokenizer, batch_size=4, keep_trace=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_backend, tmp_path_factory) -> Path:
    """The tiny random model saved as a normal model folder, loadable by name like any other."""
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_backend.model.save_pretrained(folder)
    tiny_backend.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def vllm_backend(default_model_dir: Path):
    """vLLM's offline engine on the default model (in-process; about 10 s to start on CPU)."""
    from m1.engine.backends.vllm import VLLMBackend

    return VLLMBackend(str(default_model_dir), keep_trace=True, max_model_len=4096)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, process, timeout: float = 240.0) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"server at {url} not healthy after {timeout} s")


@pytest.fixture(scope="session")
def vllm_server(default_model_dir: Path, tmp_path_factory):
    """vLLM's own OpenAI-compatible server on loopback, serving the default model; stopped by PID."""
    import json
    import os
    import subprocess
    import sys

    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = os.environ | {"VLLM_CPU_OMP_THREADS_BIND": "auto", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
                        "VLLM_CPU_KVCACHE_SPACE": "1"}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(default_model_dir),
               "--served-model-name", "smollm2-135m", "--enforce-eager", "--dtype", "float32",
               "--max-model-len", "4096", "--enable-prefix-caching", "--host", "127.0.0.1", "--port", str(port),
               # think tags, so that thinking_token_budget is active (tests/engine/test_chat_vllm_budget.py);
               # no reasoning parser: vLLM's need <think> as one token, which SmolLM2 lacks
               "--reasoning-config", json.dumps({"reasoning_start_str": "<think>", "reasoning_end_str": "</think>"})]
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", process)
        yield f"http://127.0.0.1:{port}/v1"
    except RuntimeError as err:
        raise RuntimeError(f"{err}; log tail:\n{log.read_text()[-3000:]}") from None
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
