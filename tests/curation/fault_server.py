"""A real OpenAI-compatible chat server on 127.0.0.1 that misbehaves on a fixed schedule, for
testing that the curation client survives a bad API without losing rows or paying twice.

    with FaultServer(timeout_sleep=1.0) as server:          # a thread serving HTTP on a free port
        client = ChatClient(ClientConfig(base_url=server.base_url, ...), cache_dir)
        ...
        server.paid       # Counter: request key -> good (billable) replies sent
        server.attempts   # Counter: request key -> requests received
        server.max_in_flight  # the most requests it held at once

A request's key is the digest of its JSON body, so retries of one request share a key. Each new
key gets the next plan from `PLANS` (in arrival order, cycling), or from `schedule(body)` if one
is given. Attempt n of a key gets the plan's n-th outcome, and "ok" once the plan is used up; a
good reply's content is a boxed letter, or `answer(body)` when given:

    ok            200, reasoning_content + a boxed answer (billable)
    think_tags    200, reasoning inside <think>…</think> in the content (billable)
    no_reasoning  200, an answer with no reasoning at all (billable)
    truncated     200, finish_reason "length" (billable)
    429           429 with Retry-After: 1
    500           500 with an error body
    timeout       sleeps `timeout_sleep` seconds (past the client's timeout), then hangs up
    malformed     200 with a body that is not JSON
    no_choices    200 with JSON that is not a chat completion
    400, 401      the API refusing the request, or the key

`overshoot=N` makes a good reply think exactly N words past the thinking budget the request asked
for (vLLM's `thinking_token_budget`, llama.cpp's `thinking_budget_tokens`, Anthropic's
`thinking.budget_tokens`, else OpenAI's `max_completion_tokens`), and report that many reasoning
tokens: a server that does not honour its budget (N = 0: one that uses all of it). A POST to
/v1/messages is answered in Anthropic's shape (thinking and text blocks, `stop_reason`), with
`output_tokens_details.thinking_tokens` as m1 serve reports it; `root_url` is the base for
Anthropic's client.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PLANS: list[list[str]] = [
    ["ok"],
    ["429", "ok"],
    ["500", "500", "ok"],
    ["timeout", "ok"],
    ["malformed", "ok"],
    ["truncated"],
    ["no_choices", "429", "ok"],
    ["think_tags"],
    ["500"] * 20,  # never recovers: the row must be dropped with the API error as its reason
    ["no_reasoning"],
]
BILLABLE = frozenset({"ok", "think_tags", "no_reasoning", "truncated"})


def body_key(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def answer_letter(prompt: str) -> str:
    """A deterministic "answer" so that some replies are right and some wrong."""
    return "ABCD"[int(hashlib.md5(prompt.encode()).hexdigest(), 16) % 4]


class FaultServer:
    """See the module docstring. `delay` slows every good reply (to kill a client mid-run)."""

    def __init__(self, *, schedule: Callable[[dict[str, Any]], list[str]] | None = None,
                 answer: Callable[[dict[str, Any]], str] | None = None, timeout_sleep: float = 1.0, delay: float = 0.0,
                 overshoot: int | None = None):
        self.schedule, self.answer, self.timeout_sleep, self.delay = schedule, answer, timeout_sleep, delay
        self.overshoot = overshoot
        self.lock = threading.Lock()
        self.plans: dict[str, list[str]] = {}
        self.attempts: Counter[str] = Counter()
        self.paid: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.log: list[tuple[int, str, str, str]] = []  # (sequence, key, prompt, outcome)
        self.bodies: list[dict[str, Any]] = []
        self.authorization: set[str] = set()
        self.in_flight = self.max_in_flight = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.root_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.base_url = f"{self.root_url}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def next_outcome(self, body: dict[str, Any]) -> tuple[str, str, str]:
        key = body_key(body)
        prompt = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
        with self.lock:
            if key not in self.plans:
                self.plans[key] = self.schedule(body) if self.schedule else PLANS[len(self.plans) % len(PLANS)]
            attempt = self.attempts[key]
            self.attempts[key] += 1
            plan = self.plans[key]
            outcome = plan[attempt] if attempt < len(plan) else "ok"
            self.outcomes[outcome] += 1
            self.log.append((len(self.log), key, prompt, outcome))
            self.bodies.append(body)
        return key, prompt, outcome

    def mark_paid(self, key: str) -> None:
        with self.lock:
            self.paid[key] += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self.answer()
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def answer(self) -> None:
                server.authorization.add(self.headers.get("Authorization", ""))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                key, prompt, outcome = server.next_outcome(body)
                if outcome == "timeout":
                    time.sleep(server.timeout_sleep)
                    self.close_connection = True
                    return
                if outcome == "429":
                    self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}}, {"Retry-After": "1"})
                elif outcome in ("500", "400", "401"):
                    self._send(int(outcome), {"error": {"message": f"status {outcome} on purpose", "type": "test"}})
                elif outcome == "malformed":
                    self._send_raw(200, b'{"id": "x", "choices": [{"message": ')
                elif outcome == "no_choices":
                    self._send(200, {"id": "x", "object": "chat.completion"})
                else:
                    time.sleep(server.delay)
                    server.mark_paid(key)
                    content = server.answer(body) if server.answer else None
                    reply = completion(body, prompt, outcome, content, server.overshoot)
                    self._send(200, as_message(reply) if self.path.endswith("/messages") else reply)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                self._send_raw(status, json.dumps(payload).encode(), headers)

            def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def asked_budget(body: dict[str, Any]) -> int | None:
    """The thinking budget a request asked for, in whichever dialect's field it came."""
    thinking = body.get("thinking") or {}
    for value in (body.get("thinking_token_budget"), body.get("thinking_budget_tokens"),
                  thinking.get("budget_tokens"), body.get("max_completion_tokens")):
        if value is not None:
            return int(value)
    return None


def completion(body: dict[str, Any], prompt: str, outcome: str, content: str | None = None,
               overshoot: int | None = None) -> dict[str, Any]:
    """A chat completion; by default a boxed answer chosen by `answer_letter`."""
    letter = answer_letter(prompt)
    reasoning = f"Let me think about this question. The key finding points to option {letter}."
    budget = asked_budget(body)
    if overshoot is not None and budget is not None:
        reasoning = " ".join(["think"] * (budget + overshoot))
    content = content if content is not None else f"The answer is {letter}.\n\n\\boxed{{{letter}}}"
    message: dict[str, Any] = {"role": "assistant", "content": content, "reasoning_content": reasoning}
    if outcome == "think_tags":
        message = {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n\n{content}"}
    elif outcome == "no_reasoning":
        message = {"role": "assistant", "content": content}
    elif outcome == "truncated":
        message = {"role": "assistant", "content": "", "reasoning_content": reasoning + " But wait, let me"}
    prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
    completion_tokens = len((message.get("reasoning_content") or "").split()) + len(message["content"].split())
    return {"id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "length" if outcome == "truncated" else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "completion_tokens_details": {"reasoning_tokens": len(reasoning.split())}}}


def as_message(reply: dict[str, Any]) -> dict[str, Any]:
    """A chat completion from `completion` in Anthropic's Messages shape."""
    choice, usage = reply["choices"][0], reply["usage"]
    message = choice["message"]
    blocks = [{"type": "thinking", "thinking": message["reasoning_content"], "signature": ""}] if message.get(
        "reasoning_content") else []
    blocks.append({"type": "text", "text": message["content"]})
    return {"id": "msg_fault", "type": "message", "role": "assistant", "model": reply["model"], "content": blocks,
            "stop_reason": "max_tokens" if choice["finish_reason"] == "length" else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                      "output_tokens_details": {
                          "thinking_tokens": usage["completion_tokens_details"]["reasoning_tokens"]}}}
