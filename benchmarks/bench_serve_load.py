"""Benchmark: `m1 serve` under load — 32 concurrent clients x 10 requests, small budgets, zero errors.

    .venv/bin/python benchmarks/bench_serve_load.py                        # transformers, default model
    .venv/bin/python benchmarks/bench_serve_load.py --backend vllm
    .venv/bin/python benchmarks/bench_serve_load.py --clients 8 --requests 4   # a quick look

Starts `python -m m1.serving` on a free loopback port (stopped by its PID at the end), then sends
the same 320 chat requests twice with the official `openai` client: all clients at once, then one
at a time (the baseline, same run, same server). Each request is a real MedQA question (the shared
data folder; a few built-in questions without it) with thinking_budget 16, max_tokens 8 and 0-2
"Wait" extensions. A request counts as an error if it fails or its usage breaks the budget
(thinking tokens above 16, extensions other than asked for by a model that stops at once, or
usage that does not add up). Prints p50/p99 latency, throughput, the concurrent/sequential
throughput ratio and the server's batching figures. Bounded: it stops after --time-limit seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from openai import OpenAI

from m1.serving.launch import ServerProcess

MODEL = "smollm2-135m"
FALLBACK = [
    "Which vitamin deficiency causes scurvy?\nA. Vitamin A\nB. Vitamin C\nC. Vitamin D\nD. Vitamin K",
    "Drug of choice for absence seizures?\nA. Ethosuximide\nB. Phenytoin\nC. Carbamazepine",
    "Most common cause of community-acquired pneumonia?\nA. Streptococcus pneumoniae\nB. Legionella",
]


def questions(count: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from _common import medqa_items

        items = medqa_items(count)
        return ["\n".join([item.question, *(f"{k}. {v}" for k, v in item.options.items())]) for item in items]
    except (SystemExit, ImportError, OSError):
        return FALLBACK


def requests_for(clients: int, per_client: int) -> list[list[dict]]:
    pool = questions(40)
    plan = []
    for c in range(clients):
        plan.append([{"question": pool[(c * per_client + r) % len(pool)], "extensions": (c + r) % 3}
                     for r in range(per_client)])
    return plan


def send(client: OpenAI, request: dict) -> tuple[float, int, int, str | None]:
    """(latency, prompt tokens, generated tokens, error or None)."""
    started = time.perf_counter()
    try:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": request["question"] +
                                    "\nReturn your final response within \\boxed{}."}],
            max_tokens=8,
            extra_body={"budget_preset": "m1", "thinking_budget": 16, "num_extensions": request["extensions"]})
    except Exception as err:  # noqa: BLE001 - every failure is counted
        return time.perf_counter() - started, 0, 0, f"{type(err).__name__}: {err}"
    latency = time.perf_counter() - started
    usage, block = reply.usage, reply.usage.model_extra["m1"]
    if block["thinking_tokens"] > 16 or block["answer_tokens"] > 8:
        return latency, 0, 0, f"budget broken: {block}"
    if block["extensions_used"] != request["extensions"]:
        return latency, 0, 0, f"extensions {block['extensions_used']} != {request['extensions']}"
    if usage.completion_tokens != block["thinking_tokens"] + block["answer_tokens"]:
        return latency, 0, 0, f"usage does not add up: {usage}"
    return latency, usage.prompt_tokens, usage.completion_tokens, None


def run_phase(base_url: str, plan: list[list[dict]], *, concurrent: bool, deadline: float) -> dict:
    results: list[tuple[float, int, int, str | None]] = []
    lock = threading.Lock()

    def client_loop(requests: list[dict]) -> None:
        client = OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
        for request in requests:
            if time.monotonic() > deadline:
                outcome = (0.0, 0, 0, "not sent: time limit")
            else:
                outcome = send(client, request)
            with lock:
                results.append(outcome)

    started = time.perf_counter()
    if concurrent:
        threads = [threading.Thread(target=client_loop, args=(requests,)) for requests in plan]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        client_loop([request for requests in plan for request in requests])
    wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results if r[3] is None)
    errors = [r[3] for r in results if r[3] is not None]
    return {
        "requests": len(results), "errors": len(errors), "first_errors": errors[:3], "wall": wall,
        "throughput": len(latencies) / wall, "prompt_tokens_per_s": sum(r[1] for r in results) / wall,
        "tokens_per_s": sum(r[2] for r in results) / wall, "mean_generated": sum(r[2] for r in results) / len(results),
        "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def show(name: str, phase: dict) -> None:
    print(f"{name:<11} {phase['requests']:>4} requests  {phase['errors']:>2} errors  wall {phase['wall']:6.1f} s  "
          f"{phase['throughput']:5.2f} req/s  {phase['prompt_tokens_per_s']:6.1f} prompt tok/s  "
          f"{phase['tokens_per_s']:5.1f} generated tok/s ({phase['mean_generated']:.1f} per request)  "
          f"latency p50 {phase['p50']:5.2f} s  p99 {phase['p99']:5.2f} s")
    for error in phase["first_errors"]:
        print(f"    error: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10, help="requests per client")
    parser.add_argument("--max-batch-size", type=int, default=16, help="transformers only")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds; requests not sent by then are errors")
    args = parser.parse_args()

    plan = requests_for(args.clients, args.requests)
    server_args = ["--model", MODEL, "--backend", args.backend, "--log-level", "warning"]
    if args.backend == "transformers":
        server_args += ["--max-batch-size", str(args.max_batch_size)]
    log = Path(tempfile.mkdtemp(prefix="m1-bench-serve-")) / "server.log"
    deadline = time.monotonic() + args.time_limit
    with ServerProcess(server_args, log_path=log, env={"M1_API_KEY": ""}) as server:
        print(f"m1 serve ({args.backend}, {MODEL}) at {server.url}; {args.clients} clients x {args.requests} requests, "
              f"thinking_budget 16, max_tokens 8, 0-2 extensions")
        run_phase(server.base_url, [plan[0][:2]], concurrent=False, deadline=deadline)  # warm-up, not counted
        before = httpx.get(f"{server.url}/health").json()
        concurrent = run_phase(server.base_url, plan, concurrent=True, deadline=deadline)
        after = httpx.get(f"{server.url}/health").json()
        sequential = run_phase(server.base_url, plan, concurrent=False, deadline=deadline)
        alive = server.alive()
    show("concurrent", concurrent)
    show("one at a time", sequential)
    ratio = concurrent["throughput"] / sequential["throughput"] if sequential["throughput"] else float("nan")
    print(f"throughput ratio concurrent / one at a time: {ratio:.2f}x")
    if args.backend == "transformers":
        batches = after["batches"] - before["batches"]
        mean = (after["batched_requests"] - before["batched_requests"]) / max(1, batches)
        print(f"server batching during the concurrent phase: {batches} batches, mean size {mean:.1f}, "
              f"largest {after['largest_batch']} (max batch size {args.max_batch_size})")
    print(f"server alive at the end: {alive}; log: {log}")
    return 0 if concurrent["errors"] == sequential["errors"] == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
