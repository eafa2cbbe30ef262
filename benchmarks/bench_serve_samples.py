"""Benchmark: `m1 serve` with n = 8 choices in one request vs 8 concurrent single requests.

    .venv/bin/python benchmarks/bench_serve_samples.py                     # transformers, default model
    .venv/bin/python benchmarks/bench_serve_samples.py --backend vllm
    .venv/bin/python benchmarks/bench_serve_samples.py --n 4 --repeats 1   # a quick look

Starts `python -m m1.serving` on a free loopback port (stopped by its PID at the end). In the same
run, on the same server, it then times, `--repeats` times (alternating which goes first):
- one chat request with `n` choices, sampled (temperature 1, seed S);
- `n` concurrent requests with n = 1, the same prompt, each with the seed of one of those choices
  (`choice_seed(S, i)`: choice 0 is S itself).
Every sample has the same budgets and the same rounds: the m1 preset with no "Wait" extensions, so
each sample is one thinking round and one answer round (with extensions, how many rounds a sample
takes is a draw of its own, and the slowest of 8 draws would decide each wall time). Each timed
batch's question starts with a case number of its own: drawing the same samples again would find
every round's context in vLLM's prefix cache and time nothing but lookups (the transformers
backend keeps no cache between requests). Then, untimed, one request with 3 choices and the 3
single requests of their seeds, on one case: they must draw the same samples.
Prints each wall time, the medians and their ratio (n-request / concurrent; target <= 1.05).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from openai import OpenAI

from m1.engine.backends.base import choice_seed
from m1.serving.launch import ServerProcess

MODEL = "smollm2-135m"
QUESTION = ("Case {case}. Which vitamin deficiency causes scurvy?\nA. Vitamin A\nB. Vitamin C\nC. Vitamin D\n"
            "D. Vitamin K\nReturn your final response within \\boxed{{}}.")


def request(client: OpenAI, args: argparse.Namespace, *, n: int, seed: int, case: int):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION.format(case=case)}], n=n, temperature=1.0,
        seed=seed,
        max_tokens=args.max_tokens,
        extra_body={"budget_preset": "m1", "thinking_budget": args.thinking_budget})


def replies(response) -> list[tuple[str, str]]:
    return [((c.message.model_extra or {}).get("reasoning_content") or "", c.message.content or "")
            for c in response.choices]


def one_request(client: OpenAI, args: argparse.Namespace, n: int, seed: int, case: int) -> tuple[float, list, int]:
    started = time.perf_counter()
    response = request(client, args, n=n, seed=seed, case=case)
    return time.perf_counter() - started, replies(response), response.usage.completion_tokens


def concurrent_singles(client: OpenAI, args: argparse.Namespace, n: int, seed: int,
                       case: int) -> tuple[float, list, int]:
    seeds = [choice_seed(seed, i) for i in range(n)]
    with ThreadPoolExecutor(n) as pool:
        started = time.perf_counter()
        responses = list(pool.map(lambda s: request(client, args, n=1, seed=s, case=case), seeds))
        wall = time.perf_counter() - started
    return wall, [replies(r)[0] for r in responses], sum(r.usage.completion_tokens for r in responses)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--thinking-budget", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    server_args = ["--model", MODEL, "--backend", args.backend, "--log-level", "warning"]
    if args.backend == "transformers":
        server_args += ["--max-batch-size", str(max(16, args.n))]
    log = Path(tempfile.mkdtemp(prefix="m1-bench-samples-")) / "server.log"
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: m1 serve ({args.backend}, {MODEL}); "
          f"n = {args.n}, thinking_budget {args.thinking_budget}, no extensions, max_tokens {args.max_tokens}, "
          f"temperature 1, {args.repeats} repeats")
    together, apart = [], []
    with ServerProcess(server_args, log_path=log, env={"M1_API_KEY": ""}) as server:
        client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=900)
        request(client, args, n=2, seed=0, case=0)  # warm-up, not counted
        for repeat in range(args.repeats):
            seed = args.seed + repeat
            order = (one_request, concurrent_singles) if repeat % 2 == 0 else (concurrent_singles, one_request)
            results = {run.__name__: run(client, args, args.n, seed, case=10 * repeat + 1 + side)
                       for side, run in enumerate(order)}
            (wall_n, _, tokens_n), (wall_1, _, tokens_1) = results["one_request"], results["concurrent_singles"]
            together.append(wall_n)
            apart.append(wall_1)
            print(f"repeat {repeat + 1} ({order[0].__name__} first): one request n={args.n} {wall_n:6.2f} s "
                  f"({tokens_n} tokens)   {args.n} concurrent n=1 {wall_1:6.2f} s ({tokens_1} tokens)   "
                  f"ratio {wall_n / wall_1:.3f}", flush=True)
        check = min(3, args.n)
        _, drawn_n, _ = one_request(client, args, check, args.seed, case=999)
        _, drawn_1, _ = concurrent_singles(client, args, check, args.seed, case=999)
    ratio = statistics.median(together) / statistics.median(apart)
    print(f"median: one request n={args.n} {statistics.median(together):.2f} s, {args.n} concurrent n=1 "
          f"{statistics.median(apart):.2f} s; ratio {ratio:.3f} (target <= 1.05)")
    print(f"n={check} choices draw what the single requests of their seeds draw: {drawn_n == drawn_1}")
    return 0 if drawn_n == drawn_1 else 1


if __name__ == "__main__":
    sys.exit(main())
