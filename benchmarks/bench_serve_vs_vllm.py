"""Benchmark: `m1 serve --backend vllm` against vLLM's own OpenAI server, one server at a time.

    .venv/bin/python benchmarks/bench_serve_vs_vllm.py                                 # the full run (~15 min)
    .venv/bin/python benchmarks/bench_serve_vs_vllm.py --requests 8 --concurrency 8    # a quick look

The same prompts for both (real MedQA questions from the shared data folder, the suite's sample
questions without it, rendered with the model's chat template), the same CPU settings (the same
VLLM_CPU_* environment, float32, eager, prefix caching, 4,096-token context), and one server at a
time: start it, measure, stop it, then the next. Per server:

- plain completions: greedy, max_tokens --max-tokens, --requests requests at each --concurrency
  → generated tokens/s; target m1 ≥ 0.95× vLLM.
- streaming: the same completions with stream=true, all --requests at once from --stream-clients
  clients → time to first token (first non-empty text) and latency p50/p99, errors; targets: TTFT
  ratio ≤ 1.15×, 0 errors.
- budget forcing: thinking budget B, minimum M, up to K "Wait" rounds, then the answer (the m1
  preset). m1: one /v1/completions request with m1's fields (thinking_budget, min_thinking_tokens,
  num_extensions). vLLM: the paper's client loop (s1's, written out here, not m1's OpenAI backend),
  re-sending the whole text each round: thinking up to the stop token with max_tokens = what is
  left of B, "Wait" appended while thinking is under M (K times at most), then the answer prefix
  and the answer. → generated tokens/s at --forcing-concurrency; target ≥ 1.0×. Budgets: m1's
  thinking tokens (usage.m1) must be ≤ B for every request; the loop's overshoot is the tokens of
  its final thinking, as the server tokenises the text it is sent, beyond B plus the inserted
  "Wait"s (it counts only what each round generated).

Generated tokens are the servers' `usage.completion_tokens`; the loop's stop tokens are left out
of its count, as m1's usage leaves them out. Beside wall-clock figures it prints the CPU seconds
the server's processes spent per 1,000 generated tokens, which a busy machine disturbs less. Prints
one table and each ratio against its target; exits 1 if a request failed or a budget was broken.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from m1.engine.backends.base import load_tokenizer
from m1.engine.controller import join_extension, join_prefix
from m1.engine.default_model import resolve_model
from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt
from m1.serving.launch import ServerProcess, free_port

MODEL = "smollm2-135m"
# The CPU settings both servers run with (vLLM's own defaults on this VM leave too small a KV cache).
CPU_ENV = {"VLLM_CPU_OMP_THREADS_BIND": "auto", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "2"}


def questions(count: int) -> list[tuple[str, dict[str, str]]]:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from _common import medqa_items

        items = medqa_items(count)
    except SystemExit:
        from m1.data.suite import load_suite

        sample = Path(__file__).resolve().parents[1] / "src" / "m1" / "data" / "sample" / "m1_sample_eval.json"
        items = [item for group in load_suite(sample).values() for item in group]
        print(f"(shared data absent: {len(items)} sample questions, repeated)")
    return [(items[i % len(items)].question, dict(items[i % len(items)].options)) for i in range(count)]


# ---------------------------------------------------------------- servers


@contextmanager
def vllm_server(log: Path) -> Iterator[tuple[str, int]]:
    """`python -m vllm.entrypoints.openai.api_server` as tests/conftest.py's `vllm_server` starts it."""
    port = free_port()
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_model(MODEL),
               "--served-model-name", MODEL, "--enforce-eager", "--dtype", "float32", "--max-model-len", "4096",
               "--enable-prefix-caching", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=os.environ | CPU_ENV)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vLLM's server did not start; log tail:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.terminate()  # this process only, by its PID
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def m1_server(log: Path) -> Iterator[tuple[str, int]]:
    args = ["--model", MODEL, "--backend", "vllm", "--max-context", "4096", "--log-level", "warning"]
    with ServerProcess(args, log_path=log, env=CPU_ENV | {"M1_API_KEY": ""}) as server:
        yield server.url, server.process.pid


def cpu_seconds(pid: int) -> float:
    """CPU time of a server and all its processes (engine core, workers) so far: what a part cost the
    server, whatever else the machine was running (psutil comes with vLLM, which this needs anyway)."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


# ---------------------------------------------------------------- requests


def percentile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_all(jobs: list[Callable[[httpx.Client], dict]], concurrency: int) -> tuple[list[dict], float]:
    """Every job on `concurrency` client threads (one HTTP client each); (results, wall seconds)."""
    local = threading.local()

    def run(job: Callable[[httpx.Client], dict]) -> dict:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=600)
        started = time.perf_counter()
        try:
            result = job(local.client)
        except Exception as err:  # noqa: BLE001 - every failure is counted
            result = {"error": f"{type(err).__name__}: {err}"}
        result["latency"] = time.perf_counter() - started
        return result

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(run, jobs))
    return results, time.perf_counter() - started


def post(client: httpx.Client, url: str, body: dict) -> dict:
    response = client.post(f"{url}/v1/completions", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return response.json()


def plain_job(url: str, prompt: str, max_tokens: int) -> Callable[[httpx.Client], dict]:
    def job(client: httpx.Client) -> dict:
        reply = post(client, url, {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
        return {"generated": reply["usage"]["completion_tokens"]}
    return job


def stream_job(url: str, prompt: str, max_tokens: int) -> Callable[[httpx.Client], dict]:
    def job(client: httpx.Client) -> dict:
        started, first, text, generated = time.perf_counter(), None, "", 0
        body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                "stream_options": {"include_usage": True}}
        with client.stream("POST", f"{url}/v1/completions", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.read()[:300]!r}")
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    raise RuntimeError(str(event["error"])[:300])
                for choice in event.get("choices") or []:
                    if choice.get("text") and first is None:
                        first = time.perf_counter() - started
                    text += choice.get("text") or ""
                if event.get("usage"):
                    generated = event["usage"]["completion_tokens"]
        if first is None:
            raise RuntimeError("no text streamed")
        return {"ttft": first, "generated": generated}
    return job


def m1_forcing_job(url: str, prompt: str, args: argparse.Namespace) -> Callable[[httpx.Client], dict]:
    def job(client: httpx.Client) -> dict:
        reply = post(client, url, {"model": MODEL, "prompt": prompt, "max_tokens": args.answer_tokens, "temperature": 0,
                                   "budget_preset": "m1", "thinking_budget": args.budget,
                                   "min_thinking_tokens": args.min_thinking, "num_extensions": args.extensions})
        block = reply["usage"]["m1"]
        return {"generated": reply["usage"]["completion_tokens"], "thinking": block["thinking_tokens"],
                "extensions": block["extensions_used"], "over": max(0, block["thinking_tokens"] - args.budget)}
    return job


def loop_forcing_job(url: str, prompt: str, args: argparse.Namespace, policy: BudgetPolicy, stop_ids: list[int],
                     tokenizer) -> Callable[[httpx.Client], dict]:
    """The paper's client loop: the whole text re-sent each round, the budget counted from what each round generated."""
    def job(client: httpx.Client) -> dict:
        text, thinking, used, generated, extensions = prompt, "", 0, 0, 0
        while True:
            reply = post(client, url, {"model": MODEL, "prompt": text, "max_tokens": args.budget - used,
                                       "temperature": 0, "stop_token_ids": stop_ids})
            choice, tokens = reply["choices"][0], reply["usage"]["completion_tokens"]
            stopped = choice["finish_reason"] == "stop"
            tokens -= 1 if stopped and choice.get("stop_reason") in stop_ids else 0  # the stop token itself
            used, generated = used + tokens, generated + tokens
            text, thinking = text + choice["text"], thinking + choice["text"]
            if stopped and used < args.min_thinking and extensions < args.extensions and used < args.budget:
                insert = join_extension(policy.think_start + thinking, policy.extension_str)
                text, thinking, extensions = text + insert, thinking + insert, extensions + 1
                continue
            break
        prefix = policy.answer_after_stop if used < args.budget else policy.answer_after_budget
        answer = post(client, url, {"model": MODEL, "prompt": text + join_prefix(policy.think_start + thinking, prefix),
                                    "max_tokens": args.answer_tokens, "temperature": 0,
                                    "stop_token_ids": [stop_ids[-1]]})
        generated += answer["usage"]["completion_tokens"]
        generated -= 1 if answer["choices"][0]["finish_reason"] == "stop" else 0
        # What the model saw as its thinking, tokenised as the server tokenises the re-sent text.
        seen = len(tokenizer.encode(thinking, add_special_tokens=False))
        inserted = extensions * len(tokenizer.encode(" " + policy.extension_str, add_special_tokens=False))
        return {"generated": generated, "thinking": used, "extensions": extensions,
                "over": max(0, seen - inserted - args.budget)}
    return job


# ---------------------------------------------------------------- one server


def measure(name: str, url: str, pid: int, args: argparse.Namespace, plain_prompts: list[str],
            think_prompts: list[str], tokenizer) -> dict:
    figures: dict = {}

    def part(key: str, jobs: list[Callable[[httpx.Client], dict]], concurrency: int) -> None:
        cpu = cpu_seconds(pid)
        results, wall = run_all(jobs, concurrency)
        figures[key] = summary(results, wall) | {"cpu": cpu_seconds(pid) - cpu}
        print(f"  {name} {key}: {figures[key]['tokens_per_s']:.1f} tok/s", flush=True)

    # Warm-up, not counted: every prompt once, so that each part finds them in the prefix cache
    # whichever part comes first (a cold first part measured prefill, the later ones did not).
    run_all([plain_job(url, p, 1) for p in plain_prompts + think_prompts], 8)
    if "plain" in args.parts:
        for concurrency in args.concurrency:
            part(f"plain@{concurrency}", [plain_job(url, p, args.max_tokens) for p in plain_prompts], concurrency)
    if "stream" in args.parts:
        part("stream", [stream_job(url, p, args.max_tokens) for p in plain_prompts], args.stream_clients)
    if "forcing" not in args.parts:
        return figures
    policy = BudgetPolicy.from_preset("m1")
    if name == "m1":
        jobs = [m1_forcing_job(url, p, args) for p in think_prompts]
    else:
        stop_ids = [tokenizer.convert_tokens_to_ids(s) for s in policy.think_stops]
        jobs = [loop_forcing_job(url, p, args, policy, stop_ids, tokenizer) for p in think_prompts]
    part("forcing", jobs, args.forcing_concurrency)
    return figures


def summary(results: list[dict], wall: float) -> dict:
    ok = [r for r in results if "error" not in r]
    errors = [r["error"] for r in results if "error" in r]
    out = {"requests": len(results), "errors": len(errors), "first_errors": errors[:3], "wall": wall,
           "generated": sum(r["generated"] for r in ok), "tokens_per_s": sum(r["generated"] for r in ok) / wall,
           "latency_p50": percentile([r["latency"] for r in ok], 50),
           "latency_p99": percentile([r["latency"] for r in ok], 99)}
    if ok and "ttft" in ok[0]:
        out["ttft_p50"] = percentile([r["ttft"] for r in ok], 50)
        out["ttft_p99"] = percentile([r["ttft"] for r in ok], 99)
    if ok and "thinking" in ok[0]:
        out["max_thinking"] = max(r["thinking"] for r in ok)
        out["over_requests"] = sum(1 for r in ok if r["over"] > 0)
        out["over_tokens"] = sum(r["over"] for r in ok)
        out["extensions"] = statistics.mean(r["extensions"] for r in ok)
    return out


# ---------------------------------------------------------------- report


def ratio_line(what: str, m1: float, vllm: float, target: str = "", good: bool | None = None) -> str:
    verdict = "" if good is None else "met" if good else "MISSED"
    return f"  {what:<44} m1 {m1:8.3f}  vLLM {vllm:8.3f}  ratio {m1 / vllm:5.2f}x  {target:<10} {verdict}"


def report(figures: dict[str, dict], args: argparse.Namespace) -> int:
    m1, vl = figures["m1"], figures["vllm"]
    print("\nserver  part         requests errors  wall s  req/s  generated  tok/s  CPU s/1k tok  lat p50  lat p99  "
          "ttft p50  ttft p99")
    for name, label in (("vllm", "vLLM"), ("m1", "m1")):
        for part, f in figures[name].items():
            ttft = f"{f['ttft_p50']:8.3f}  {f['ttft_p99']:8.3f}" if "ttft_p50" in f else ""
            per_k = 1000 * f["cpu"] / max(1, f["generated"])
            print(f"{label:<7} {part:<12} {f['requests']:>8} {f['errors']:>6} {f['wall']:7.1f} "
                  f"{f['requests'] / f['wall']:6.2f} {f['generated']:>10} "
                  f"{f['tokens_per_s']:6.1f} {per_k:13.1f} {f['latency_p50']:8.2f} {f['latency_p99']:8.2f} {ttft}")
            for error in f["first_errors"]:
                print(f"    error: {error}")
    fm, fv = m1["forcing"], vl["forcing"]
    print(f"\nbudget forcing (B {args.budget}, minimum {args.min_thinking}, K {args.extensions}, answer "
          f"{args.answer_tokens}): m1 = one request with m1's fields; "
          f"vLLM = the paper's client loop, whole text re-sent")
    print(f"  m1:   largest thinking {fm.get('max_thinking')} tokens (usage.m1), {fm.get('over_requests')} "
          f"requests over B ({fm.get('over_tokens')} tokens), {fm.get('extensions', 0):.2f} Wait rounds per request")
    print(f"  loop: largest thinking {fv.get('max_thinking')} tokens generated, {fv.get('over_requests')} requests "
          f"whose thinking as re-tokenised exceeds B + its Waits ({fv.get('over_tokens')} tokens over), "
          f"{fv.get('extensions', 0):.2f} Wait rounds per request")
    print("\nratios (m1 / vLLM)")
    checks = []
    for concurrency in args.concurrency:
        a, b = m1[f"plain@{concurrency}"]["tokens_per_s"], vl[f"plain@{concurrency}"]["tokens_per_s"]
        checks.append(ratio_line(f"plain completions tok/s, concurrency {concurrency}", a, b, "target >= 0.95",
                                 a / b >= 0.95))
    a, b = fm["tokens_per_s"], fv["tokens_per_s"]
    checks.append(ratio_line(f"budget forcing tok/s, concurrency {args.forcing_concurrency}", a, b, "target >= 1.0",
                             a / b >= 1.0))
    sm, sv = m1["stream"], vl["stream"]
    checks.append(ratio_line(f"streamed TTFT p50 s, {args.stream_clients} clients", sm["ttft_p50"], sv["ttft_p50"],
                             "target <= 1.15", sm["ttft_p50"] / sv["ttft_p50"] <= 1.15))
    checks.append(ratio_line(f"streamed TTFT p99 s, {args.stream_clients} clients", sm["ttft_p99"], sv["ttft_p99"]))
    checks.append(ratio_line(f"streamed latency p50 s, {args.stream_clients} clients", sm["latency_p50"],
                             sv["latency_p50"]))
    checks.append(ratio_line(f"streamed latency p99 s, {args.stream_clients} clients", sm["latency_p99"],
                             sv["latency_p99"]))
    print("\n".join(checks))
    errors = sum(f["errors"] for server in figures.values() for f in server.values())
    exact = fm.get("over_requests") == 0
    print(f"  errors: {errors} (target 0)   m1's budgets exact: {'yes' if exact else 'NO'}")
    return 1 if errors or not exact else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="requests per part")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32], help="plain completions")
    parser.add_argument("--stream-clients", type=int, default=32, help="streaming clients at once")
    parser.add_argument("--forcing-concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128, help="plain and streamed completions")
    parser.add_argument("--budget", type=int, default=256, help="budget forcing: thinking budget B")
    parser.add_argument("--min-thinking", type=int, default=192, help="budget forcing: minimum thinking tokens")
    parser.add_argument("--extensions", type=int, default=4, help='budget forcing: K, "Wait" rounds at most')
    parser.add_argument("--answer-tokens", type=int, default=32, help="budget forcing: answer max_tokens")
    parser.add_argument("--only", choices=("m1", "vllm"), help="one server, figures as JSON (debugging)")
    parser.add_argument("--parts", nargs="+", choices=("plain", "stream", "forcing"),
                        default=["plain", "stream", "forcing"], help="all three unless --only")
    args = parser.parse_args()

    tokenizer = load_tokenizer(resolve_model(MODEL))
    pool = questions(args.requests)
    plain = [render_prompt(tokenizer, q, o, BudgetPolicy.from_preset("no-think")) for q, o in pool]
    think = [render_prompt(tokenizer, q, o, BudgetPolicy.from_preset("m1")) for q, o in pool]
    logs = Path(tempfile.mkdtemp(prefix="m1-bench-vs-vllm-"))
    print(f"{MODEL}, {len(pool)} MedQA prompts, {os.cpu_count()} CPUs, {json.dumps(CPU_ENV)}; server logs in {logs}")
    figures: dict[str, dict] = {}
    for name, server in (("vllm", vllm_server), ("m1", m1_server)):
        if args.only and args.only != name:
            continue
        started = time.perf_counter()
        with server(logs / f"{name}.log") as (url, pid):
            print(f"{name}: up in {time.perf_counter() - started:.0f} s at {url}", flush=True)
            figures[name] = measure(name, url, pid, args, plain, think, tokenizer)
        print(f"{name}: measured and stopped ({time.perf_counter() - started:.0f} s)", flush=True)
    if args.only or len(args.parts) < 3:
        print(json.dumps(figures, indent=1))
        return 0
    return report(figures, args)


if __name__ == "__main__":
    sys.exit(main())
