"""Benchmark: `m1 serve` under faults — clients that leave mid-stream or mid-request and malformed
requests, interleaved with good requests. The server must stay healthy and every good request succeed.

    .venv/bin/python benchmarks/bench_serve_faults.py                      # transformers, default model
    .venv/bin/python benchmarks/bench_serve_faults.py --backend vllm --rounds 4

Starts `python -m m1.serving` on a free loopback port (stopped by its PID at the end). Each round
sends, in a shuffled order and 8 at a time, one of each kind below; --rounds bounds the count
and --time-limit the time. Prints, per kind, how many were sent and how many ended as expected,
then the server's health, a last good request, and how many tracebacks the server logged.

Good:      chat, chat streamed to [DONE], completion (each checked: 200, budget kept, usage adds up)
Leaving:   a stream closed after its first event; a request abandoned after 0.3 s
Malformed: invalid JSON, wrong types, budgets out of range, min above budget, unknown field,
           unknown model, a body over the size limit (413), an over-long prompt, a wrong method,
           and on a raw socket: a body shorter than its Content-Length, half a request line of
           headers, and bytes that are not HTTP at all, each followed by closing the connection.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from m1.serving.launch import ServerProcess

MODEL = "smollm2-135m"
QUESTION = ("Which vitamin deficiency causes scurvy?\nA. Vitamin A\nB. Vitamin C\n"
            "Return your final response within \\boxed{}.")
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8,
        "budget_preset": "m1", "thinking_budget": 16, "num_extensions": 1}
LONG_THINKING = {**CHAT, "thinking_budget": 64, "min_thinking_tokens": 64, "num_extensions": 30}


def check_usage(body: dict) -> bool:
    usage = body["usage"]
    block = usage["m1"]
    return (block["thinking_tokens"] <= 16 and block["answer_tokens"] <= 8
            and usage["completion_tokens"] == block["thinking_tokens"] + block["answer_tokens"])


def good_chat(url: str) -> bool:
    response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=600)
    return response.status_code == 200 and check_usage(response.json())


def good_stream(url: str) -> bool:
    events = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=600) as response:
        if response.status_code != 200:
            return False
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    if not events or events[-1] != "[DONE]":
        return False
    final = json.loads(events[-2])
    return final["choices"][0]["finish_reason"] in ("stop", "length") and check_usage(final)


def good_completion(url: str) -> bool:
    response = httpx.post(f"{url}/v1/completions", json={"model": MODEL, "prompt": "The capital of France is",
                                                         "max_tokens": 8}, timeout=600)
    return response.status_code == 200 and response.json()["usage"]["completion_tokens"] <= 8


def leave_mid_stream(url: str) -> bool:
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**LONG_THINKING, "stream": True},
                      timeout=600) as response:
        return next(response.iter_lines()).startswith("data: ")  # then close without reading on


def leave_mid_request(url: str) -> bool:
    try:
        httpx.post(f"{url}/v1/chat/completions", json=LONG_THINKING, timeout=0.3)
    except httpx.TimeoutException:
        return True
    return True  # answered within 0.3 s: nothing was abandoned, still fine


def status_is(expected: int, path: str = "/v1/chat/completions", method: str = "POST", **request):
    def send(url: str) -> bool:
        return httpx.request(method, f"{url}{path}", timeout=60, **request).status_code == expected
    return send


def raw(payload: bytes):
    """Send raw bytes on a fresh connection, read whatever comes back for a moment, then close."""
    def send(url: str) -> bool:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(payload)
            sock.settimeout(1.0)
            try:
                sock.recv(4096)
            except OSError:
                pass
        return True
    return send


def pending(url: str) -> int:
    """Requests the server still holds: queued (transformers) or running (vLLM)."""
    health = httpx.get(f"{url}/health", timeout=30).json()
    return health.get("waiting", health.get("running", 0))


def kinds() -> dict[str, object]:
    return {
        "good: chat": good_chat,
        "good: chat streamed": good_stream,
        "good: completion": good_completion,
        "leave mid-stream": leave_mid_stream,
        "leave mid-request": leave_mid_request,
        "bad: invalid JSON": status_is(400, content=b"{oops", headers={"content-type": "application/json"}),
        "bad: wrong type": status_is(400, json={**CHAT, "thinking_budget": "lots"}),
        "bad: budget <= 0": status_is(400, json={**CHAT, "thinking_budget": 0}),
        "bad: min > budget": status_is(400, json={**CHAT, "min_thinking_tokens": 17}),
        "bad: negative extensions": status_is(400, json={**CHAT, "num_extensions": -2}),
        "bad: unknown field": status_is(400, json={**CHAT, "thinking_budgett": 5}),
        "bad: unknown model": status_is(404, json={**CHAT, "model": "gpt-5"}),
        "bad: body > 1 MB": status_is(413, json={**CHAT, "messages": [{"role": "user", "content": "x" * 1_100_000}]}),
        "bad: prompt too long": status_is(400, path="/v1/completions",
                                          json={"model": MODEL, "prompt": "word " * 9000, "max_tokens": 4}),
        "bad: wrong method": status_is(405, method="GET"),
        "raw: short body": raw(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 1000\r\n\r\n{\"model\": "),
        "raw: half headers": raw(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le"),
        "raw: not HTTP": raw(bytes(random.Random(7).randrange(256) for _ in range(512))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    parser.add_argument("--rounds", type=int, default=8, help="each round sends one request of every kind")
    parser.add_argument("--workers", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--time-limit", type=float, default=900)
    args = parser.parse_args()

    plan = [name for _ in range(args.rounds) for name in kinds()]
    random.Random(0).shuffle(plan)
    senders = kinds()
    sent, ok, first_failure = Counter(), Counter(), {}
    log = Path(tempfile.mkdtemp(prefix="m1-bench-faults-")) / "server.log"
    with ServerProcess(["--model", MODEL, "--backend", args.backend], log_path=log, env={"M1_API_KEY": ""}) as server:
        print(f"m1 serve ({args.backend}, {MODEL}) at {server.url}; {len(plan)} requests of {len(senders)} kinds, "
              f"{args.workers} at a time")
        deadline = time.monotonic() + args.time_limit
        started = time.perf_counter()

        def run(name: str) -> tuple[str, bool, str]:
            if time.monotonic() > deadline:
                return name, False, "not sent: time limit"
            try:
                return name, bool(senders[name](server.url)), ""
            except Exception as err:  # noqa: BLE001 - counted as not as expected
                return name, False, f"{type(err).__name__}: {err}"

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            for name, success, why in pool.map(run, plan):
                sent[name] += 1
                ok[name] += success
                if not success:
                    first_failure.setdefault(name, why or "unexpected response")
        wall = time.perf_counter() - started
        health = httpx.get(f"{server.url}/health", timeout=30)
        last_good = good_chat(server.url)
        settle = time.monotonic() + 60
        while (queued := pending(server.url)) and time.monotonic() < settle:
            time.sleep(0.5)
        alive = server.alive()
        server_log = server.log()
        tracebacks = server_log.count("Traceback")
        noticed = (server_log.count("client left mid-stream"), server_log.count("client left before its reply"),
                   server_log.count("client left before sending"))

    print(f"{'kind':<26} {'sent':>5} {'as expected':>12}")
    for name in senders:
        print(f"{name:<26} {sent[name]:>5} {ok[name]:>12}" + (f"   first failure: {first_failure[name]}"
                                                              if name in first_failure else ""))
    good = [name for name in senders if name.startswith("good")]
    good_ok, good_sent = sum(ok[n] for n in good), sum(sent[n] for n in good)
    print(f"good requests succeeded: {good_ok}/{good_sent}; all requests as expected: {sum(ok.values())}/{len(plan)} "
          f"in {wall:.1f} s")
    print(f"after the faults: /health {health.status_code} {health.json().get('status')}, a new good request "
          f"{'succeeded' if last_good else 'FAILED'}, queue {queued}, server alive {alive}, "
          f"tracebacks in the server log {tracebacks}; log: {log}")
    print(f"departures the server noticed: {noticed[0]} mid-stream (generation cancelled or discarded), "
          f"{noticed[1]} mid-request, {noticed[2]} before the body was complete")
    passed = good_ok == good_sent and health.status_code == 200 and last_good and alive and tracebacks == 0
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
