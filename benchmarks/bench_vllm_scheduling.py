"""Benchmark: per-sample scheduling against lock-step scheduling on the vLLM backend, same run.

    .venv/bin/python benchmarks/bench_vllm_scheduling.py [--prompts 8] [--budget 64] [--repeats 1]

A batch with very uneven thinking: every sample is forced to think `budget` tokens (a minimum
equal to the budget, K extensions), but half of them are extended with "Let me analyze each
option." (after which the default model writes long rounds) and half with "Wait" (after which it
stops again within a few tokens, so it needs many short rounds). Under lock-step scheduling each
round of every sample waits for the longest round in flight; under per-sample scheduling a
sample's next round starts as soon as its last ends. The same real MedQA prompts, one engine,
the prefix cache emptied before each timed run; the two schedules alternate (`--repeats`) so
drift on a shared machine hits both. It prints generated tokens/s for each, the ratio
per-sample / lock-step (target >= 1.3) and whether the greedy records are identical.
"""

from __future__ import annotations

import argparse
import time

from _common import medqa_items
from m1.engine.backends.vllm import VLLMBackend
from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt

EXTENSIONS = ("Let me analyze each option.\n", "Wait")  # long rounds, short rounds


def signature(record) -> tuple:
    return (record.error, record.thinking_ids, record.answer_ids, record.thinking_end, record.extensions_used,
            record.inserted_tokens, record.reply)


def timed(backend: VLLMBackend, schedule: str, prompts: list[str], policies: list[BudgetPolicy]):
    backend.scheduling = schedule
    backend.llm.reset_prefix_cache()
    start = time.perf_counter()
    records = backend.generate(prompts, policies)
    return records, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--budget", type=int, default=64)
    parser.add_argument("--extensions", type=int, default=32, help="K for every sample (enough for short rounds)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per schedule, alternating")
    args = parser.parse_args()

    policies = [BudgetPolicy.from_preset("m1", max_thinking_tokens=args.budget, min_thinking_tokens=args.budget,
                                         num_extensions=args.extensions, max_answer_tokens=1,
                                         extension_str=EXTENSIONS[index % 2])
                for index in range(args.prompts)]
    backend = VLLMBackend("smollm2-135m", max_model_len=4096)
    prompts = [render_prompt(backend.tokenizer, item.question, item.options, policy)
               for item, policy in zip(medqa_items(args.prompts), policies)]
    backend.generate(prompts[:2], BudgetPolicy.from_preset("m1", max_thinking_tokens=4, max_answer_tokens=1))

    seconds = {"per_sample": 0.0, "lockstep": 0.0}
    results: dict[str, list] = {}
    order = ["per_sample", "lockstep"]
    for repeat in range(args.repeats):
        for schedule in order if repeat % 2 == 0 else order[::-1]:
            records, took = timed(backend, schedule, prompts, policies)
            seconds[schedule] += took
            results.setdefault(schedule, records)
    rounds = [r.extensions_used + 1 for r in results["per_sample"]]
    thinking = [r.thinking_tokens for r in results["per_sample"]]
    print(f"{args.prompts} prompts, budget {args.budget} (minimum {args.budget}), K {args.extensions}: "
          f"thinking rounds per sample {min(rounds)}-{max(rounds)}, thinking tokens {min(thinking)}-{max(thinking)}")
    rates = {}
    for schedule in order:
        tokens = sum(r.thinking_tokens + r.answer_tokens for r in results[schedule])
        rates[schedule] = tokens * args.repeats / seconds[schedule]
        print(f"{schedule:10s}: {rates[schedule]:.1f} tok/s ({tokens} tokens, {seconds[schedule] / args.repeats:.1f} s "
              "per run)")
    print(f"ratio per_sample / lockstep: {rates['per_sample'] / rates['lockstep']:.2f}x")
    same = sum(signature(a) == signature(b) for a, b in zip(results["per_sample"], results["lockstep"]))
    print(f"greedy records identical: {same}/{args.prompts}")


if __name__ == "__main__":
    main()
