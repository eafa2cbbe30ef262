"""The closed loop on CPU: curate the real HuatuoGPT-o1 demo chains, train the default model on
them with the CPU smoke preset, and evaluate the checkpoint with `m1 eval`.

Before training, SmolLM2 never answers in the m1 format when the prompt does not force the
thinking marker; after 16 optimizer steps on the chains it opens with `<|im_start|>think` and
writes `<|im_start|>answer` on at least 90 % of held-out evaluation questions, and the loss on
held-out chains drops. The CI overrides below shrink the preset to fit a few minutes on two CPU
cores: chains trimmed to 256 tokens, 16 steps of 2 records at a higher learning rate, and five
short MedMCQA questions for the probe. The full preset (README, "Training") runs the same loop
on every record.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from m1.config import load_config
from m1.evaluation.config import EvalConfig
from m1.evaluation.runner import run_eval
from m1.training.config import TrainConfig
from m1.training.recipe import run_training

REPO = Path(__file__).resolve().parents[2]
CI_OVERRIDES = [
    "max_length=256", "max_steps=16", "global_batch_size=2", "per_device_batch_size=2", "learning_rate=1e-3",
    "warmup_ratio=0", "data.held_out=12", "save_strategy=no", "eval_strategy=no",
    "probe.items=5", "probe.max_new_tokens=128", "probe.sources=[MedMCQA_validation]",
]


@pytest.mark.slow
def test_closed_loop_curate_train_eval(huatuo_demo_run, tmp_path) -> None:
    console = Console(quiet=True)
    records = huatuo_demo_run / "sft.jsonl"  # configs/curate/huatuo_demo.yaml, run once for the session
    assert sum(1 for _ in records.open()) == 194  # 198 chains, one exact duplicate, three evaluation items

    config = load_config(TrainConfig, REPO / "configs/train/cpu_smoke.yaml",
                         [f"data.path={records}", f"output_dir={tmp_path / 'train'}", *CI_OVERRIDES])
    summary = run_training(config, console)
    before, after = summary["probe"]["before"], summary["probe"]["after"]
    held_out = summary["held_out_loss"]
    print(f"\nclosed loop: m1 format unforced {before['following']}/{before['items']} before, "
          f"{after['following']}/{after['items']} after; held-out loss {held_out['before']:.3f} -> "
          f"{held_out['after']:.3f}; {summary['global_step']} steps, {summary['input_tokens_seen']} tokens, "
          f"{summary['train_seconds']:.0f} s")
    assert before["rate"] <= 0.1
    assert after["rate"] >= 0.9
    assert held_out["after"] < held_out["before"]

    # `m1 eval` loads the checkpoint and runs: two questions and a short budget show it (the
    # format itself was measured by the probe above).
    evaluation = load_config(EvalConfig, None, [f"model={summary['final_model']}", f"out_dir={tmp_path / 'eval'}",
                                                "per_source=1", "limit=2", "grid.max_thinking_tokens=[16]",
                                                "policy={max_answer_tokens: 8}"])
    result = run_eval(evaluation, console)
    assert result["items"] == 2 and len(result["points"]) == 1
    usage = result["points"][0]["usage"]
    assert usage["thinking_tokens_mean"] > 0 and usage.get("errors", 0) == 0
