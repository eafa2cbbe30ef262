"""The recipe end to end on the tiny model: resume after a crash, the saved model, LoRA, the report,
and a two-process launch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from transformers import TrainerCallback

from m1.config import dump_config
from m1.curation.sft_format import sft_messages
from m1.data.errors import DataError
from m1.training.config import DataSettings, LoraSettings, TrainConfig
from m1.training.recipe import run_training
from m1.training.templates import has_generation_markers

QUIET = Console(quiet=True)


class CrashAfterSaving(TrainerCallback):
    """Dies right after the checkpoint of step `step` is on disk, as a killed job would."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"stopped after saving step {self.step}")


@pytest.fixture(scope="module")
def records_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("records") / "sft.jsonl"
    rows = []
    for i in range(14):
        messages = sft_messages(f"Case {i}: which vitamin prevents scurvy?\nA. C\nB. D",
                                f"Collagen needs ascorbate; case {i} fits.", "A")
        rows.append({"uid": f"case-{i}", "messages": messages})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def config_for(model_dir: Path, records: Path, out: Path, **overrides) -> TrainConfig:
    values = dict(model=str(model_dir), data=DataSettings(path=str(records), held_out=2), output_dir=str(out),
                  max_length=128, use_cpu=True, learning_rate=1e-3, warmup_ratio=0.0, epochs=1,
                  global_batch_size=2, per_device_batch_size=2, logging_steps=1, save_strategy="steps",
                  save_steps=2, save_total_limit=None, eval_strategy="no")
    return TrainConfig(**(values | overrides))


def losses(log_history: list[dict]) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in log_history if "loss" in entry}


def test_a_gguf_model_is_refused_with_the_way_out(records_file, tmp_path) -> None:
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(DataError, match="GGUF-loaded model cannot be trained.*safetensors"):
        run_training(config_for(gguf, records_file, tmp_path / "run"), QUIET)


@pytest.mark.slow
def test_resume_after_a_crash_continues_the_same_run(tiny_model_dir, records_file, tmp_path) -> None:
    whole = run_training(config_for(tiny_model_dir, records_file, tmp_path / "whole"), QUIET)
    assert whole["global_step"] == 6  # 12 training records, 2 per step

    interrupted = config_for(tiny_model_dir, records_file, tmp_path / "crashed")
    with pytest.raises(KeyboardInterrupt):
        run_training(interrupted, QUIET, callbacks=[CrashAfterSaving(4)])
    assert (tmp_path / "crashed" / "checkpoint-4").is_dir() and not (tmp_path / "crashed" / "final").exists()
    with pytest.raises(DataError, match="resume_from_checkpoint=auto"):  # never silently starts over
        run_training(interrupted, QUIET)

    resumed = run_training(interrupted.model_copy(update={"resume_from_checkpoint": "auto"}), QUIET)
    assert resumed["resumed_from"].endswith("checkpoint-4")
    assert resumed["global_step"] == whole["global_step"]
    report = json.loads((tmp_path / "crashed" / "report" / "report.json").read_text())
    expected, got = losses(json.loads((tmp_path / "whole" / "report" / "report.json").read_text())["log_history"]), \
        losses(report["log_history"])
    assert sorted(got) == sorted(expected) == list(range(1, 7))  # steps 1–4 from the checkpoint, 5–6 after it
    assert got == pytest.approx(expected, rel=1e-4)
    assert resumed["held_out_loss"]["after"] == pytest.approx(whole["held_out_loss"]["after"], rel=1e-4)


@pytest.mark.slow
def test_saved_model_report_and_lora(tiny_model_dir, records_file, tmp_path) -> None:
    from m1.engine import BudgetPolicy, load_backend, render_prompt

    summary = run_training(config_for(tiny_model_dir, records_file, tmp_path / "full", save_strategy="no"), QUIET)
    final = Path(summary["final_model"])
    assert summary["held_out_loss"]["after"] < summary["held_out_loss"]["before"]
    assert summary["lengths"]["train"]["records_out"] == 12 and summary["input_tokens_seen"] > 0
    for name in ("report.json", "report.md", "loss.png"):
        assert (tmp_path / "full" / "report" / name).stat().st_size > 0
    assert (tmp_path / "full" / "config.yaml").is_file()

    # The final folder holds the model's original template and a pad token that is not EOS, and
    # the engine loads it like any other model.
    config = json.loads((final / "config.json").read_text())
    assert config["pad_token_id"] != config["eos_token_id"]
    backend = load_backend("transformers", str(final))
    assert not has_generation_markers(backend.tokenizer.chat_template)
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=4, max_answer_tokens=2)
    (record,) = backend.generate([render_prompt(backend.tokenizer, "Scurvy?", {"A": "C", "B": "D"}, policy)], policy)
    assert record.error is None and record.thinking_tokens + record.answer_tokens > 0

    lora = run_training(config_for(tiny_model_dir, records_file, tmp_path / "lora", save_strategy="no",
                                   lora=LoraSettings(r=4, alpha=8, dropout=0.0)), QUIET)
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()
    merged = load_backend("transformers", lora["final_model"])
    assert not any("lora" in name for name, _ in merged.model.named_parameters())
    assert lora["held_out_loss"]["after"] < lora["held_out_loss"]["before"]


@pytest.mark.slow
def test_two_processes_train_like_one(tiny_model_dir, records_file, tmp_path) -> None:
    """`torchrun` with two CPU processes (DDP over gloo): the same global batches, so the same steps,
    tokens and first loss as one process with gradient accumulation; one process saves and reports.
    (FSDP and ZeRO-3 need GPUs: accelerate applies them only to GPU launches.)"""
    batch = {"global_batch_size": 4, "per_device_batch_size": 2, "save_strategy": "no"}
    alone = run_training(config_for(tiny_model_dir, records_file, tmp_path / "one", **batch), QUIET)

    config = config_for(tiny_model_dir, records_file, tmp_path / "two", **batch)
    preset = tmp_path / "train.yaml"
    preset.write_text(dump_config(config))
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
              "-m", "m1.training", str(preset)]
    done = subprocess.run(launch, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training on 12 records") == 1  # the other process stays quiet
    assert "2 per device × 2 processes × 1 accumulation" in " ".join(done.stdout.split())

    report = json.loads((tmp_path / "two" / "report" / "report.json").read_text())
    assert report["world_size"] == 2 and alone["world_size"] == 1
    assert report["global_step"] == alone["global_step"] == 3
    assert report["input_tokens_seen"] == alone["input_tokens_seen"]
    assert report["first_train_loss"] == pytest.approx(alone["first_train_loss"], rel=1e-5)
    # Later steps differ by float reduction order, which Adam's first updates amplify a little.
    assert report["held_out_loss"]["after"] == pytest.approx(alone["held_out_loss"]["after"], rel=1e-2)
    assert (tmp_path / "two" / "final" / "model.safetensors").is_file()
