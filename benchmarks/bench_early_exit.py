"""Benchmark: what early exit costs and what it saves, on transformers and vLLM, same run.

    .venv/bin/python benchmarks/bench_early_exit.py [--prompts 16] [--budget 512] [--every 64] [--repeats 2] [--no-vllm]

On the same real MedQA prompts with the default model, each backend runs three policies under
the same cap B and "Wait" rounds (the extension string makes the default model keep writing):
  fixed        no early exit;
  observe      probes every `--every` thinking tokens only, never exits: the thinking is the fixed
               run's, so the extra wall time is the probes' whole cost (the issue's ≤ 10 % target);
  observe+tr   the same plus the default transitions ("Wait", a blank line, "Alternatively");
  exit         DEER's rule, confidence >= `--threshold` (0.95 in DEER's code), with transitions.
It prints each probe overhead (extra wall time over the fixed run's, and the probe time the records
report over it), the thinking tokens saved by `exit`, and the strict accuracy of both. The
policies run `--repeats` times, interleaved, and each keeps its fastest time (single runs here
vary by about a second).
The default model is a plumbing model: its accuracy change is reported as it is, never tuned.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import medqa_items
from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt
from m1.engine.registry import load_backend
from m1.scoring import score_reply


def run(backend, prompts, items, policy: BudgetPolicy) -> dict:
    start = time.perf_counter()
    records = backend.generate(prompts, policy, choices=[tuple(item.options) for item in items])
    seconds = time.perf_counter() - start
    correct = [score_reply(r.reply, item.options, item.answer_idx, "strict").correct for r, item in zip(records, items)]
    return {"seconds": seconds, "records": records, "accuracy": 100 * statistics.fmean(correct),
            "thinking": statistics.fmean(r.thinking_tokens for r in records),
            "probe_seconds": sum(r.probe_seconds for r in records),
            "probes": sum(len(r.probes or ()) for r in records),
            "exits": sum(r.thinking_end == "early_exit" for r in records)}


def bench(name: str, backend, items, args) -> None:
    base = dict(max_thinking_tokens=args.budget, num_extensions=args.extensions, max_answer_tokens=16,
                extension_str="Let me analyze each option.\n")
    policies = {
        "fixed": BudgetPolicy.from_preset("m1", **base),
        "observe": BudgetPolicy.from_preset("m1", **base, early_exit={"every": args.every, "observe": True,
                                                                      "transitions": ()}),
        "observe+tr": BudgetPolicy.from_preset("m1", **base, early_exit={"every": args.every, "observe": True}),
        "exit": BudgetPolicy.from_preset("m1", **base, early_exit={"every": args.every, "threshold": args.threshold}),
    }
    prompts = [render_prompt(backend.tokenizer, i.question, i.options, policies["fixed"]) for i in items]
    # Warm-up, probes included: the first logprobs request costs vLLM a one-off setup.
    warm = BudgetPolicy.from_preset("m1", max_thinking_tokens=4, max_answer_tokens=1, early_exit={"every": 2})
    backend.generate(prompts[:2], warm, choices=[tuple(item.options) for item in items[:2]])
    results: dict[str, dict] = {}
    for _ in range(args.repeats):
        for key, policy in policies.items():
            result = run(backend, prompts, items, policy)
            if key not in results or result["seconds"] < results[key]["seconds"]:
                results[key] = result
    fixed, exit_ = results["fixed"], results["exit"]
    for key, r in results.items():
        print(f"{name} {key:10s} {r['seconds']:7.1f} s  thinking {r['thinking']:6.1f} tok/item  probes {r['probes']:4d}  "
              f"exits {r['exits']:3d}  strict accuracy {r['accuracy']:5.1f} %")
    for key in ("observe", "observe+tr"):
        observe = results[key]
        same = all(a.thinking_ids == b.thinking_ids for a, b in zip(fixed["records"], observe["records"]))
        print(f"{name} {key}: thinking identical to fixed: {same}; probe overhead "
              f"{(observe['seconds'] - fixed['seconds']) / fixed['seconds']:.1%} of the fixed run's time "
              f"(records: probe time {observe['probe_seconds']:.1f} s, {observe['probe_seconds'] / fixed['seconds']:.1%})")
    saved = 1 - exit_["thinking"] / fixed["thinking"] if fixed["thinking"] else 0.0
    print(f"{name} early exit (confidence >= {args.threshold}): thinking tokens saved {saved:.1%}, "
          f"accuracy {exit_['accuracy'] - fixed['accuracy']:+.1f} points, wall time "
          f"{exit_['seconds'] / fixed['seconds']:.2f}x the fixed run")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--budget", type=int, default=512)
    parser.add_argument("--extensions", type=int, default=4)
    parser.add_argument("--every", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-vllm", action="store_true")
    args = parser.parse_args()
    items = medqa_items(args.prompts)
    bench("transformers", load_backend("transformers", "smollm2-135m", batch_size=args.prompts), items, args)
    if not args.no_vllm:
        bench("vllm", load_backend("vllm", "smollm2-135m", max_model_len=4096), items, args)


if __name__ == "__main__":
    main()
