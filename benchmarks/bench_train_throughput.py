"""Benchmark: SFT training throughput on CPU for the default model, full fine-tuning versus LoRA.

    .venv/bin/python benchmarks/bench_train_throughput.py [--steps 4] [--batch 4] [--max-length 256]

Both runs train the default model (SmolLM2-135M-Instruct, float32) through the recipe's own
trainer (TRL SFTTrainer, assistant-only loss) on the same real reasoning chains of the
HuatuoGPT-o1 demo set, cut to exactly `--max-length` tokens so that no step carries padding.
The first optimizer step of each run is a warm-up and is not timed; tokens/s counts every input
token of the timed steps. Ratios are measured in this one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from rich.console import Console
from transformers import TrainerCallback

from m1.curation.sft_format import sft_messages, sft_prompt
from m1.data.loaders import load_items
from m1.data.suite import shared_data_dir
from m1.training.config import DataSettings, LoraSettings, TrainConfig
from m1.training.data import SFTRecord
from m1.training.lengths import apply_length_policy
from m1.training.recipe import build_trainer, load_model


class StepClock(TrainerCallback):
    """Time and input tokens from the end of the first step to the end of the last."""

    def __init__(self) -> None:
        self.start: tuple[float, int] | None = None
        self.end: tuple[float, int] | None = None

    def on_step_end(self, args, state, control, **kwargs):
        mark = (time.perf_counter(), state.num_input_tokens_seen)
        if state.global_step == 1:
            self.start = mark
        self.end = mark

    def tokens_per_second(self) -> tuple[float, int, float]:
        seconds, tokens = self.end[0] - self.start[0], self.end[1] - self.start[1]
        return tokens / seconds, tokens, seconds


def demo_records() -> list[SFTRecord]:
    shared = shared_data_dir()
    if shared is None:
        sys.exit("the real data was not found: put the shared data at ../shared/data or set M1_SHARED_DATA")
    items = load_items(shared / "pools/huatuo_demo/demo_data.json", format="huatuo-demo").items
    return [SFTRecord(item.uid, sft_messages(sft_prompt(item.question, item.options), item.metadata["reasoning"],
                                             item.metadata["response"])) for item in items]


def measure(lora: LoraSettings | None, args: argparse.Namespace, workdir: str) -> tuple[float, int, float, int]:
    config = TrainConfig(model="smollm2-135m", data=DataSettings(path="unused"), output_dir=workdir,
                         max_length=args.max_length, max_length_policy="truncate", lora=lora, use_cpu=True,
                         learning_rate=1e-4 if lora else 1e-5, warmup_ratio=0.0, max_steps=args.steps + 1,
                         global_batch_size=args.batch, per_device_batch_size=args.batch, save_strategy="no",
                         eval_strategy="no", logging_steps=args.steps + 1)
    quiet = Console(quiet=True)
    model, tokenizer, template = load_model(config, quiet)
    records, _ = apply_length_policy(demo_records()[: args.batch * (args.steps + 1)], tokenizer, template,
                                     config.max_length, "truncate")
    clock = StepClock()
    trainer = build_trainer(config, model, tokenizer, template, records, [], callbacks=[clock])
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    trainer.train()
    return (*clock.tokens_per_second(), trainable)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per run (after one warm-up)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        full = measure(None, args, workdir)
        lora = measure(LoraSettings(r=16, alpha=32, dropout=0.0), args, workdir)
    for name, (rate, tokens, seconds, trainable) in (("full fine-tuning", full), ("LoRA r=16 all-linear", lora)):
        print(f"{name}: {rate:.1f} tok/s ({tokens} tokens in {seconds:.1f} s; {trainable / 1e6:.2f} M trainable "
              f"parameters; batch {args.batch} × {args.max_length} tokens)")
    print(f"ratio LoRA / full fine-tuning: {lora[0] / full[0]:.2f}x")


if __name__ == "__main__":
    main()
