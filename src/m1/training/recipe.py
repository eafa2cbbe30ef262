"""The SFT recipe: `m1 train CONFIG [key=value ...]`, top to bottom.

    m1 train configs/train/cpu_smoke.yaml                          # the closed loop on a laptop CPU
    m1 train configs/train/cpu_smoke.yaml resume_from_checkpoint=auto
    accelerate launch --config_file configs/accelerate/fsdp_qwen2_8gpu.yaml -m m1.training \\
        configs/train/paper_7b_fsdp.yaml

    from m1.training import run_training
    summary = run_training(load_config(TrainConfig, "configs/train/cpu_smoke.yaml"))

1. model and tokenizer (a registry alias resolves to its safetensors folder; GGUF cannot be trained),
   the training chat template (checked to render like the model's own) and a pad token that is
   not EOS;
2. records: read, held-out split, sample, max-length policy (with counts);
3. the format probe on the untouched model (optional);
4. TRL's SFTTrainer with assistant-only loss (and LoRA, packing, gradient checkpointing as
   configured); held-out loss before training; train, resuming from a checkpoint if asked;
5. the final model in `output_dir/final` with its tokenizer and its original chat template
   (LoRA: the adapter in `output_dir/adapter` and, in one process, the merged model in `final`);
6. held-out loss and the format probe after training, on the saved folder as the engine loads it;
7. the report in `output_dir/report` (loss curve, tokens, time, length policy, probe, config).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from m1.console import make_console
from m1.config import dump_config
from m1.data.errors import DataError
from m1.io import atomic_write_text
from m1.training.config import TrainConfig
from m1.training.data import SFTRecord, load_records, sample_records, split_held_out
from m1.training.lengths import LengthReport, apply_length_policy
from m1.training.probe import ProbeResult, format_probe, probe_items
from m1.training.report import loss_points, write_report
from m1.training.templates import check_renders_like, choose_pad_token, tokenizer_template, training_chat_template

FINAL_DIR, ADAPTER_DIR, REPORT_DIR, CONFIG_FILE = "final", "adapter", "report", "config.yaml"


def run_training(config: TrainConfig, console: Console | None = None, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train, save and report one run; returns the report's summary. `callbacks` go to the Trainer."""
    import torch
    import transformers
    import trl

    from m1.engine.backends.hf import TransformersBackend

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    main_process = int(os.environ.get("RANK", "0")) == 0
    # Every process of a multi-GPU launch runs this function; one of them speaks.
    console = (console or make_console()) if main_process else make_console(quiet=True)
    run_dir = Path(config.output_dir)
    resume = resolve_resume(config, run_dir)
    check_launch(config, world_size, console)
    if main_process:
        record_config(config, run_dir, console)
    transformers.set_seed(config.seed)

    # 1-2. Model, tokenizer, training template; records after the held-out split and length policy.
    model, tokenizer, template = load_model(config, console)
    train_records, held_records, lengths = prepare_records(config, tokenizer, template, console)

    # 3. The format probe on the untouched model.
    probing = config.probe.items > 0 and world_size == 1
    probe: dict[str, ProbeResult] = {}
    if probing:
        items = probe_items(config.probe, config.seed)
        probe["before"] = format_probe(model, tokenizer, items, config.probe.max_new_tokens)
        console.print(f"before training, {probe['before'].following} of {len(items)} replies follow the m1 format "
                      "unforced")

    # 4. Train, with held-out loss before and after.
    trainer = build_trainer(config, model, tokenizer, template, train_records, held_records, world_size, callbacks)
    args = trainer.args
    held_out_loss: dict[str, float] = {}
    if held_records and config.evaluate_before_training and resume is None:
        held_out_loss["before"] = trainer.evaluate()["eval_loss"]
    console.print(f"training on {len(train_records)} records: {args.num_train_epochs:g} epochs, global batch "
                  f"{config.global_batch_size} = {config.per_device_batch_size} per device × {world_size} processes "
                  f"× {args.gradient_accumulation_steps} accumulation" + (f"; resuming from {resume}" if resume else ""))
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.monotonic() - started
    if held_records:
        held_out_loss["after"] = final_eval_loss(trainer)

    # 5. The final model, with the original chat template.
    final_dir = save_final(trainer, tokenizer, config, run_dir, world_size)

    # 6. Does the saved model write the format by itself now?
    if probing and final_dir is not None and main_process:
        saved = TransformersBackend(str(final_dir))
        probe["after"] = format_probe(saved.model, saved.tokenizer, items, config.probe.max_new_tokens)
        console.print(f"after training, {probe['after'].following} of {len(items)} replies follow the m1 format "
                      "unforced")

    # 7. The report. The Trainer starts a fresh log when training begins, so the held-out loss
    # measured before it goes back in at step 0.
    state = trainer.state
    before = [{"step": 0, "eval_loss": held_out_loss["before"]}] if "before" in held_out_loss else []
    log_history = before + state.log_history
    train_losses, _ = loss_points(log_history)
    summary = {
        "model": config.model, "model_path": model.name_or_path, "output_dir": str(run_dir),
        "final_model": str(final_dir) if final_dir else None,
        "adapter": str(run_dir / ADAPTER_DIR) if config.lora else None,
        "resumed_from": resume, "world_size": world_size, "global_step": state.global_step,
        "epochs_done": float(state.epoch or 0.0), "train_seconds": train_seconds,
        "input_tokens_seen": int(state.num_input_tokens_seen),
        "first_train_loss": train_losses[0][1] if train_losses else None,
        "last_train_loss": train_losses[-1][1] if train_losses else None,
        "held_out_records": len(held_records), "held_out_loss": held_out_loss,
        "probe": {when: result.to_dict() for when, result in probe.items()},
        "lengths": {split: report.to_dict() for split, report in lengths.items()},
        "pad_token": tokenizer.pad_token,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "config": config.model_dump(mode="json"), "config_yaml": dump_config(config),
    }
    if main_process:
        paths = write_report(run_dir / REPORT_DIR, summary, log_history)
        console.print(f"final model: {final_dir}\nreport: {paths.markdown} (loss curve {paths.figure})", markup=False)
    return summary


def load_model(config: TrainConfig, console: Console) -> tuple[Any, Any, str]:
    """The model, its tokenizer (pad token set, never EOS) and the training chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from m1.engine.default_model import resolve_model

    model_path = resolve_model(config.model)
    if str(model_path).endswith(".gguf"):
        raise DataError.at(model_path, "", "model", "a GGUF-loaded model cannot be trained",
                           "use a safetensors folder (the default model's alias resolves to one)")
    hub = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(model_path, **hub)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=_dtype(config.model_dtype), **hub)
    template = training_chat_template(tokenizer, config.chat_template)
    check_renders_like(tokenizer, template)
    tokenizer.pad_token = choose_pad_token(tokenizer, model, config.pad_token)
    console.print(f"model: {config.model} ({model_path}); pad token {tokenizer.pad_token!r} "
                  f"(id {tokenizer.pad_token_id}), EOS {tokenizer.eos_token!r}", markup=False)
    return model, tokenizer, template


def prepare_records(config: TrainConfig, tokenizer: Any, template: str,
                    console: Console) -> tuple[list[SFTRecord], list[SFTRecord], dict[str, LengthReport]]:
    """Training and held-out records after the held-out split, the sample and the length policy."""
    records = load_records(config.data)
    train_records, held_records = split_held_out(records, config.data.held_out, config.seed)
    train_records = sample_records(train_records, config.data.limit, config.seed)
    train_records, train_lengths = apply_length_policy(train_records, tokenizer, template, config.max_length,
                                                       config.max_length_policy)
    held_records, held_lengths = apply_length_policy(held_records, tokenizer, template, config.max_length,
                                                     config.max_length_policy)
    lengths = {"train": train_lengths} | ({"held_out": held_lengths} if held_lengths.records_in else {})
    console.print(length_table(lengths))
    if not train_records:
        raise DataError.at(config.data.path, "", "max_length", "no record is left to train on",
                           "raise max_length or choose another max_length_policy")
    return train_records, held_records, lengths


def build_trainer(config: TrainConfig, model: Any, tokenizer: Any, template: str, train_records: list[SFTRecord],
                  held_records: list[SFTRecord], world_size: int = 1, callbacks: list[Any] | None = None) -> Any:
    """TRL's SFTTrainer with assistant-only loss. TRL tokenizes with the tokenizer's template, so the
    tokenizer carries the training template while the trainer is built and its original one again
    before anything can be saved."""
    import trl

    with tokenizer_template(tokenizer, template):
        return trl.SFTTrainer(model=model, args=config.sft_config(world_size), processing_class=tokenizer,
                              train_dataset=as_dataset(train_records),
                              eval_dataset=as_dataset(held_records) if held_records else None,
                              peft_config=lora_config(config), callbacks=callbacks)


def resolve_resume(config: TrainConfig, run_dir: Path) -> str | None:
    """The checkpoint to resume from; refuses to start afresh over someone's checkpoints."""
    from transformers.trainer_utils import get_last_checkpoint

    latest = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    setting = config.resume_from_checkpoint
    if setting is None:
        if latest is not None:
            raise DataError.at(run_dir, "", "resume_from_checkpoint", f"{run_dir} already holds {Path(latest).name}",
                               "pass resume_from_checkpoint=auto to continue it, or choose another output_dir")
        return None
    if setting == "auto":
        return latest
    if not (Path(setting) / "trainer_state.json").is_file():
        raise DataError.at(setting, "", "resume_from_checkpoint", "not a Trainer checkpoint (no trainer_state.json)",
                           "pass a checkpoint-N folder, or auto")
    return setting


def check_launch(config: TrainConfig, world_size: int, console: Console) -> None:
    """Refuse a batch the launch cannot split (before any model is loaded); note a topology change."""
    try:
        config.gradient_accumulation(world_size)
    except ValueError as err:
        raise DataError.at("config", "", "global_batch_size", str(err),
                           "launch a number of processes that divides it, or set global_batch_size=") from None
    expected = config.launch.world_size
    if world_size != expected:
        console.print(f"[yellow]note:[/] this preset was written for {expected} processes and runs on {world_size}; "
                      "gradient accumulation keeps the global batch"
                      + (f" (launch: accelerate launch --config_file {config.launch.accelerate_config} -m m1.training "
                         "CONFIG)" if config.launch.accelerate_config else ""))


def record_config(config: TrainConfig, run_dir: Path, console: Console) -> None:
    """Write the resolved config; on resume, say which keys changed since the run began."""
    path = run_dir / CONFIG_FILE
    text = dump_config(config)
    if path.exists() and path.read_text(encoding="utf-8") != text:
        import yaml

        before, now = yaml.safe_load(path.read_text(encoding="utf-8")), yaml.safe_load(text)
        changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
        console.print(f"[yellow]note:[/] the config differs from the one this run started with in: {', '.join(changed)}")
    atomic_write_text(path, text)


def _dtype(name: str) -> Any:
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


def as_dataset(records: list[SFTRecord]) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"messages": record.messages} for record in records])


def lora_config(config: TrainConfig) -> Any:
    if config.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=config.lora.r, lora_alpha=config.lora.alpha,
                      lora_dropout=config.lora.dropout, target_modules=config.lora.target_modules)


def final_eval_loss(trainer: Any) -> float:
    """Held-out loss at the last step: the one evaluation logged there, or a new one."""
    logged = [e for e in trainer.state.log_history if "eval_loss" in e and e.get("step") == trainer.state.global_step]
    return float(logged[-1]["eval_loss"]) if logged else float(trainer.evaluate()["eval_loss"])


def save_final(trainer: Any, tokenizer: Any, config: TrainConfig, run_dir: Path, world_size: int) -> Path | None:
    """Save what the engines load; returns the full-model folder (None for LoRA without merging)."""
    final_dir = run_dir / FINAL_DIR
    if config.lora is None:
        trainer.save_model(str(final_dir))  # gathers FSDP/ZeRO-3 shards; writes the tokenizer too
        return final_dir
    trainer.save_model(str(run_dir / ADAPTER_DIR))
    if not config.lora.merge or world_size > 1:
        return None
    if trainer.args.should_save:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(final_dir))
        tokenizer.save_pretrained(str(final_dir))
    return final_dir


def length_table(lengths: dict[str, LengthReport]) -> Table:
    policy = next(iter(lengths.values()))
    cut = {"truncate": "truncated", "trim_reasoning": "trimmed"}.get(policy.policy)
    table = Table(title=f"records by length: max_length {policy.max_length}, policy {policy.policy}")
    for column in ("split", "in", "fit", *([cut] if cut else []), "dropped", "out", "tokens", "loss tokens", "longest"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, report in lengths.items():
        changed = [str(report.truncated if cut == "truncated" else report.trimmed)] if cut else []
        table.add_row(split, str(report.records_in), str(report.within_limit), *changed,
                      str(sum(report.dropped.values())), str(report.records_out), str(report.tokens),
                      str(report.loss_tokens), str(report.longest_in))
    return table
