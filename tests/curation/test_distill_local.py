"""Distill with the `local` client kind: the default model runs in-process through the m1 engine,
its thinking becomes the reasoning and its answer the content, in one engine batch, cached like
an API's replies (the README demo's setup)."""

from __future__ import annotations

import pytest

from m1.engine.client import ClientConfig
from m1.curation.distill import Distill, DistillConfig
from m1.curation.stage import dropped_rows, kept_rows, run_stage

from .servers import MODEL, headqa_rows

pytestmark = pytest.mark.slow


def test_the_local_kind_distills_in_process_and_caches(tmp_path, shared_data, default_model_dir):
    rows = headqa_rows(shared_data, 2)
    # A budget the minimum reaches: SmolLM2 thinks 16 tokens, then answers after "Final Answer:".
    teacher = ClientConfig(kind="local", backend="transformers", model=MODEL, max_tokens=16,
                           extra_body={"thinking_budget": 16, "min_thinking_tokens": 16, "num_extensions": 4},
                           backend_options={"batch_size": 4})
    config = DistillConfig(teacher=teacher)
    manifest = run_stage(Distill(config, tmp_path), rows, tmp_path / "distill", upstream="u")

    stats = manifest["extra"]["teacher"]
    assert stats["requests"] == stats["replies"] == 2 and stats["cache_hits"] == 0
    assert 0 < stats["reasoning_tokens"] <= 2 * 16 < stats["prompt_tokens"]
    assert stats["completion_tokens"] <= 2 * (16 + 16)
    assert len(kept_rows(tmp_path / "distill")) + len(dropped_rows(tmp_path / "distill")) == 2
    for row in kept_rows(tmp_path / "distill"):
        teacher = row["teacher"]
        assert teacher["reasoning"].strip() and teacher["content"].startswith("Final Answer:")
        assert "<|im_start|>" not in teacher["content"] and teacher["model"] == MODEL
        assert teacher["usage"]["reasoning_tokens"] == 16
    for row in dropped_rows(tmp_path / "distill"):
        assert row["reason"] == "teacher reply truncated (finish_reason=length)"

    again = run_stage(Distill(config, tmp_path), rows, tmp_path / "distill-again", upstream="v")
    stats = again["extra"]["teacher"]
    assert stats["requests"] == 0 and stats["cache_hits"] == 2
