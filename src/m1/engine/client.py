"""The chat client every model-facing caller shares (curation's teacher, judges and base models,
`m1 eval`'s chat backend): one interface for a paid OpenAI-compatible API, Anthropic's Messages
API and the m1 engine running in-process, behind one disk cache.

    config = ClientConfig(model="deepseek-reasoner", base_url="https://api.deepseek.com",
                          api_key_env="DEEPSEEK_API_KEY", max_tokens=8000,
                          price_input_per_million=0.55, price_output_per_million=2.19)
    client = ChatClient(config, cache_dir=Path("runs/curate/m23k/cache"))
    reply = client.chat([{"role": "user", "content": prompt}])
    reply.reasoning, reply.content, reply.finish_reason, reply.usage, reply.cached
    client.stats()   # requests, cache hits, retries, errors by kind, tokens, cost

What it guarantees, because curation pays per token and runs for days:

- A re-run never pays twice. Every reply is cached on disk under the hash of the request body
  (model, messages, sampling parameters, extra body fields; never the API key or the URL), one
  JSON file per request written atomically. Two threads asking the same request at once wait for
  one another instead of both paying.
- Transient failures are retried with exponential backoff and jitter: 429 (honouring
  Retry-After), 5xx, timeouts, dropped connections and malformed replies. What cannot succeed by
  retrying (401/403/404, or a long run of failures in a row) stops the run with a clear error; a
  request the API refuses (400) fails that one row. `RequestFailed.reason` is a short, readable
  sentence a stage can drop the row with.
- Limits: at most `max_concurrency` requests in flight, and sliding one-minute windows for
  requests and tokens per minute.
- Parameters are sent under the names the API reads (`temperature`, `top_p`, `max_tokens` or
  `max_completion_tokens`); `extra_body` passes provider fields through (m1 serve's
  `thinking_budget`, `num_extensions`, `min_thinking_tokens`, `budget_preset`).
- `finish_reason == "length"` marks a reply truncated (`reply.truncated`); with
  `truncated_retry_max_tokens` set the request is tried once more with that larger limit.
- Reasoning is read from `message.reasoning_content` (DeepSeek, vLLM, m1 serve), or `reasoning`,
  or a `<think>…</think>` block at the start of the content (an unclosed `<think>` is thinking that
  never closed: `reply.thinking_closed` False), or Anthropic's `thinking` blocks (`kind: anthropic`,
  `POST /v1/messages` through the official SDK, with the same cache, limits and retries).
  `reply.reasoning_reported` says whether the provider counted reasoning tokens at all.
- The API key is read from the environment variable `api_key_env` when the first request is sent,
  and lives only in the HTTP client's memory.

`kind: local` runs the m1 engine in-process (`m1.engine.load_backend`) and answers with the same
reply shape, cache and accounting. Its bodies go through `m1 serve`'s own translation
(`m1.engine.wire`: the same parsing, budget policy, defaults and reply body), so a config can move
between the two without changing a single cached reply: `max_tokens` is the answer budget,
`max_completion_tokens` thinking + answer together, `thinking_budget` the thinking budget, and a
body that names no preset gets the model's own, as on the server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from m1.engine.registry import check_backend
from m1.io import atomic_write_json

Messages = list[dict[str, str]]
log = logging.getLogger("m1.engine.client")

# The m1 fields `m1 serve` reads from a request body; the local kind reads exactly these.
LOCAL_BODY_FIELDS = ("budget_preset", "thinking_budget", "num_extensions", "extension_str", "min_thinking_tokens",
                     "seed")
# A Retry-After longer than this is more likely a misconfigured proxy than a real wait.
MAX_RETRY_AFTER = 600.0
_THINK_BLOCK = re.compile(r"^\s*(?:<think>)?(.*?)</think>\s*", re.DOTALL)


class ClientConfig(BaseModel):
    """Which model to ask, how, and how hard to try; the same block for teacher, judges and base models."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai", "anthropic", "local"] = Field(
        "openai", description="an OpenAI-compatible API, Anthropic's Messages API, or the m1 engine in-process")
    model: str = "deepseek-reasoner"
    base_url: str | None = Field(None, description="e.g. https://api.deepseek.com or http://127.0.0.1:8000/v1")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the environment variable holding the key")
    # Sampling. Greedy by default, the paper's setting; None leaves a field out of the request
    # (the provider's default applies; reasoning models such as o1 refuse `temperature`).
    temperature: float | None = Field(0.0, ge=0.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(8000, gt=0, description="None: left out of the request (the provider's limit)")
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    truncated_retry_max_tokens: int | None = Field(
        None, gt=0, description="ask once more with this max_tokens when a reply is cut short")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="provider fields sent as they are")
    # Reliability.
    timeout: float = Field(600.0, gt=0, description="seconds per request")
    max_retries: int = Field(5, ge=0)
    backoff_initial: float = Field(1.0, ge=0, description="seconds before the first retry; doubles each time")
    backoff_max: float = Field(60.0, ge=0)
    max_consecutive_failures: int = Field(
        20, gt=0, description="this many requests failing in a row stops the run (the endpoint is down)")
    max_concurrency: int = Field(8, gt=0)
    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    # Accounting, in the provider's currency per million tokens.
    price_input_per_million: float = Field(0.0, ge=0)
    price_output_per_million: float = Field(0.0, ge=0)
    cache_dir: Path | None = Field(None, description="shared reply cache; default: the run's cache/ folder")
    # kind: local
    backend: str = Field("transformers", description="an in-process backend name from m1.engine.registry")
    backend_options: dict[str, Any] = Field(default_factory=dict, description="constructor options of the backend")

    @field_validator("backend")
    @classmethod
    def _in_process_backend(cls, backend: str) -> str:
        return check_backend(backend, in_process=True, purpose="a local curation client")

    @model_validator(mode="after")
    def _local_fields_known(self) -> ClientConfig:
        if self.kind == "local":
            unknown = sorted(set(self.extra_body) - set(LOCAL_BODY_FIELDS))
            if unknown:
                raise ValueError(f"extra_body field(s) {', '.join(unknown)} mean nothing to kind=local; "
                                 f"it reads {', '.join(LOCAL_BODY_FIELDS)}")
        return self

    def request_params(self) -> dict[str, Any]:
        """The sampling part of the request body (what changes replies, so part of the cache key)."""
        params: dict[str, Any] = {} if self.max_tokens is None else {self.max_tokens_field: self.max_tokens}
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.top_p is not None:
            params["top_p"] = self.top_p
        return params | self.extra_body

    def identity(self) -> dict[str, Any]:
        """What a stage puts in its fingerprint: every field that can change a reply, never the key."""
        return {"kind": self.kind, "model": self.model, "params": self.request_params(),
                "truncated_retry_max_tokens": self.truncated_retry_max_tokens}


class RequestFailed(Exception):
    """One request could not be answered; `reason` is short enough to count as a drop reason."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason if detail is None else f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class ClientFatal(RuntimeError):
    """No request can succeed (bad key, unknown model, endpoint down): stop the run and say why."""


class MalformedReply(Exception):
    """The server answered 200 with something that is not a chat completion."""


@dataclass
class ChatReply:
    """One chat completion as the stages use it."""

    content: str
    reasoning: str
    finish_reason: str | None
    model: str
    usage: dict[str, int]
    cost: float
    cached: bool = False
    key: str = ""
    reasoning_reported: bool = False  # the provider counted reasoning tokens (usage["reasoning_tokens"])
    thinking_closed: bool = True  # False: the reply's thinking never ended (an unclosed <think>, cut by length)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def record(self) -> dict[str, Any]:
        """What a row stores (`row["teacher"]`)."""
        return {"reasoning": self.reasoning, "content": self.content, "finish_reason": self.finish_reason,
                "model": self.model, "usage": self.usage, "cost": self.cost, "cached": self.cached}


def _has_prompt_slot(template: str) -> str:
    if "{prompt}" not in template:
        raise ValueError(f"a prompt template must contain {{prompt}}; got {template!r}")
    return template


# A user-message template for stage configs: `{prompt}` is replaced by the row's prompt.
PromptTemplate = Annotated[str, AfterValidator(_has_prompt_slot)]


def user_turn(template: str, prompt: str) -> Messages:
    """A one-message conversation: `template` with `{prompt}` replaced by the row's prompt.

    Plain replacement rather than `str.format`, because prompts and the paper's template
    (`Return your final response within \\boxed{}. {prompt}`) contain braces of their own.
    """
    return [{"role": "user", "content": template.replace("{prompt}", prompt)}]


def request_key(body: dict[str, Any]) -> str:
    """The cache key: a digest of the whole request body (the body never holds the API key)."""
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ReplyCache:
    """Replies on disk, one file per request key: `cache_dir/ab/abcdef….json`.

    One file per request makes every write atomic on its own and lets several processes share a
    cache; a crash can lose at most the replies in flight.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None  # unreadable entries are asked again and rewritten

    def put(self, key: str, entry: dict[str, Any]) -> None:
        atomic_write_json(self.path(key), entry, indent=None)


class RateLimiter:
    """Sliding one-minute windows for requests and (estimated) tokens; `acquire` blocks until both fit."""

    WINDOW = 60.0

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None):
        self.rpm, self.tpm = requests_per_minute, tokens_per_minute
        self._sent: deque[list[float]] = deque()  # [time, tokens]; tokens corrected once usage is known
        self._lock = threading.Lock()

    def acquire(self, tokens: int) -> list[float]:
        if self.rpm is None and self.tpm is None:
            return [time.monotonic(), float(tokens)]
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0][0] >= self.WINDOW:
                    self._sent.popleft()
                used = sum(entry[1] for entry in self._sent)
                fits_requests = self.rpm is None or len(self._sent) < self.rpm
                # An empty window always admits one request, however large, so nothing waits forever.
                fits_tokens = self.tpm is None or not self._sent or used + tokens <= self.tpm
                if fits_requests and fits_tokens:
                    entry = [now, float(tokens)]
                    self._sent.append(entry)
                    return entry
                wait = self.WINDOW - (now - self._sent[0][0])
            time.sleep(max(0.01, wait))

    def settle(self, entry: list[float], tokens: int) -> None:
        """Replace a request's estimate with what the reply says it used."""
        with self._lock:
            entry[1] = float(tokens)


@dataclass
class _Stats:
    requests: int = 0  # HTTP requests sent (or prompts generated locally), retries included
    replies: int = 0  # replies received and paid for
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0  # requests given up on (RequestFailed)
    truncated: int = 0
    truncated_retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0
    cost_saved_by_cache: float = 0.0
    errors: Counter = field(default_factory=Counter)


class ChatClient:
    """Chat completions with a cache, limits, retries and accounting; see the module docstring."""

    def __init__(self, config: ClientConfig, cache_dir: Path):
        self.config = config
        self.cache = ReplyCache(config.cache_dir or cache_dir)
        self._limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._stats = _Stats()
        self._stats_lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_lock = threading.Lock()
        self._consecutive_failures = 0
        self._api: Any = None
        self._api_lock = threading.Lock()
        self._engine: _LocalEngine | None = None
        self._engine_lock = threading.Lock()

    # -- public -------------------------------------------------------------------------------

    def body(self, messages: Messages, *, max_tokens: int | None = None,
             fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """The request body that is sent (and hashed for the cache); `fields` are this request's own
        (a thinking budget per grid point) and win over the config's."""
        params = self.config.request_params() | (fields or {})
        if max_tokens is not None:
            params[self.config.max_tokens_field] = max_tokens
        return {"model": self.config.model, "messages": messages} | params

    def chat(self, messages: Messages, fields: dict[str, Any] | None = None) -> ChatReply:
        """One reply; raises `RequestFailed` (drop the row) or `ClientFatal` (stop the run)."""
        reply = self._reply(self.body(messages, fields=fields))
        if self._wants_longer(reply):
            reply = self._reply(self.body(messages, max_tokens=self.config.truncated_retry_max_tokens, fields=fields))
        return reply

    def chat_many(self, conversations: Sequence[Messages], workers: int | None = None,
                  fields: Sequence[dict[str, Any] | None] | None = None) -> list[ChatReply | RequestFailed]:
        """Replies in order, a failed one as its `RequestFailed`; `fields[i]` are conversation i's own.

        An API is asked from `workers` threads (default `max_concurrency`); a local engine
        generates every uncached conversation as one batch.
        """
        if self.config.kind != "local":
            workers = min(workers or self.config.max_concurrency, max(1, len(conversations)))
            per_request = list(fields) if fields is not None else [None] * len(conversations)
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chat") as pool:
                return list(pool.map(self._chat_or_failure, conversations, per_request))
        results = self._generate_local([self.body(messages) for messages in conversations])
        again = [i for i, result in enumerate(results) if isinstance(result, ChatReply) and self._wants_longer(result)]
        if again:
            longer = self.config.truncated_retry_max_tokens
            for i, result in zip(again, self._generate_local([self.body(conversations[i], max_tokens=longer)
                                                              for i in again])):
                results[i] = result
        return results

    def stats(self) -> dict[str, Any]:
        """Figures for a stage's manifest."""
        with self._stats_lock:
            s = self._stats
            return {"model": self.config.model, "requests": s.requests, "replies": s.replies,
                    "cache_hits": s.cache_hits, "retries": s.retries, "failures": s.failures,
                    "truncated": s.truncated, "truncated_retries": s.truncated_retries,
                    "errors": dict(s.errors), "prompt_tokens": s.prompt_tokens,
                    "completion_tokens": s.completion_tokens, "reasoning_tokens": s.reasoning_tokens,
                    "cost": round(s.cost, 6), "cost_saved_by_cache": round(s.cost_saved_by_cache, 6)}

    # -- cache, dedup, truncation -------------------------------------------------------------

    def _chat_or_failure(self, messages: Messages, fields: dict[str, Any] | None = None) -> ChatReply | RequestFailed:
        try:
            return self.chat(messages, fields)
        except RequestFailed as failure:
            return failure

    def _wants_longer(self, reply: ChatReply) -> bool:
        longer = self.config.truncated_retry_max_tokens
        wanted = reply.truncated and longer is not None and longer > (self.config.max_tokens or 0)
        if wanted:
            with self._stats_lock:
                self._stats.truncated_retries += 1
        return wanted

    def _key_lock(self, key: str) -> threading.Lock:
        with self._key_locks_lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _reply(self, body: dict[str, Any]) -> ChatReply:
        if self.config.kind == "local":
            result = self._generate_local([body])[0]
            if isinstance(result, RequestFailed):
                raise result
            return result
        key = request_key(body)
        # Held while the request is in flight: a second thread with the same request then finds
        # the reply in the cache instead of paying for it again.
        with self._key_lock(key):
            entry = self.cache.get(key)
            if entry is not None:
                return self._hit(entry, key)
            return self._from_entry(self._store(key, body, self._send_with_retries(body)), key, cached=False)

    def _hit(self, entry: dict[str, Any], key: str) -> ChatReply:
        reply = self._from_entry(entry, key, cached=True)
        with self._stats_lock:
            self._stats.cache_hits += 1
            self._stats.cost_saved_by_cache += reply.cost
        return reply

    def _store(self, key: str, body: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Cache a good reply, count it as paid, and return the cache entry."""
        reply = self._parse(data)  # validated when received; cannot fail here
        usage = reply["usage"]
        cost = (usage["prompt_tokens"] * self.config.price_input_per_million
                + usage["completion_tokens"] * self.config.price_output_per_million) / 1e6
        entry = {"request": body, "reply": reply, "cost": cost, "created": time.time()}
        self.cache.put(key, entry)
        with self._stats_lock:
            s = self._stats
            s.replies += 1
            s.prompt_tokens += usage["prompt_tokens"]
            s.completion_tokens += usage["completion_tokens"]
            s.reasoning_tokens += usage["reasoning_tokens"]
            s.cost += cost
            s.truncated += reply["finish_reason"] == "length"
            self._consecutive_failures = 0
        return entry

    @staticmethod
    def _from_entry(entry: dict[str, Any], key: str, *, cached: bool) -> ChatReply:
        reply = entry["reply"]
        return ChatReply(content=reply["content"], reasoning=reply["reasoning"], finish_reason=reply["finish_reason"],
                         model=reply["model"], usage=dict(reply["usage"]), cost=entry.get("cost", 0.0),
                         cached=cached, key=key, reasoning_reported=reply.get("reasoning_reported", False),
                         thinking_closed=reply.get("thinking_closed", True))

    def _parse(self, data: Any) -> dict[str, Any]:
        return parse_message(data) if self.config.kind == "anthropic" else parse_completion(data)

    # -- the API ------------------------------------------------------------------------------

    def _sdk(self) -> Any:
        """The SDK module of this kind; both name their errors alike (APITimeoutError, APIStatusError…)."""
        if self.config.kind == "anthropic":
            import anthropic

            return anthropic
        import openai

        return openai

    def _client(self) -> Any:
        with self._api_lock:
            if self._api is None:
                sdk = self._sdk()
                factory = sdk.Anthropic if self.config.kind == "anthropic" else sdk.OpenAI
                # The SDK's own retries are off: this client retries, counts and explains them.
                self._api = factory(api_key=self._api_key(), base_url=self.config.base_url,
                                    timeout=self.config.timeout, max_retries=0)
            return self._api

    def _call(self, api: Any, body: dict[str, Any]) -> Any:
        """One HTTP request for `body`, as the SDK's raw response (its text is the reply's JSON)."""
        extra = {name: value for name, value in body.items() if name not in ("model", "messages")}
        # Anthropic's SDK checks its keyword arguments against its own release; the body goes as it is.
        names = ("max_tokens",) if self.config.kind == "anthropic" else (
            "temperature", "top_p", "max_tokens", "max_completion_tokens")
        known = {name: extra.pop(name) for name in names if name in extra}
        create = api.messages if self.config.kind == "anthropic" else api.chat.completions
        return create.with_raw_response.create(model=body["model"], messages=body["messages"],
                                               extra_body=extra or None, **known)

    def _api_key(self) -> str:
        key = os.environ.get(self.config.api_key_env)
        if key:
            return key
        host = urlparse(self.config.base_url or "").hostname
        if host in ("127.0.0.1", "localhost", "::1"):
            return "unused"  # a local server (m1 serve, vLLM) usually wants no key
        raise ClientFatal(f"the API key is missing: set the environment variable {self.config.api_key_env} "
                          f"(named by api_key_env) for {self.config.base_url or 'the OpenAI API'}")

    def _send_with_retries(self, body: dict[str, Any]) -> dict[str, Any]:
        sdk = self._sdk()
        api = self._client()
        # Providers count max_tokens against the token limit up front; about 4 characters per token.
        estimate = (sum(len(m.get("content") or "") for m in body["messages"]) // 4
                    + int(body.get(self.config.max_tokens_field) or 0))
        last_error = ""
        for attempt in range(self.config.max_retries + 1):
            retry_after: float | None = None
            ticket = self._limiter.acquire(estimate)
            with self._slots:
                with self._stats_lock:
                    self._stats.requests += 1
                try:
                    data = json.loads(self._call(api, body).http_response.text)
                    self._parse(data)
                except (json.JSONDecodeError, MalformedReply) as err:
                    kind, last_error = "malformed", f"malformed reply ({err})"
                except sdk.APITimeoutError:
                    kind, last_error = "timeout", f"timeout after {self.config.timeout:g} s"
                except sdk.APIConnectionError as err:
                    kind, last_error = "connection", f"connection error ({err.__cause__ or err})"
                except sdk.APIStatusError as err:
                    status = err.status_code
                    if status in (401, 403, 404):
                        raise ClientFatal(f"{self.config.base_url or 'the API'} answered {status} for model "
                                          f"{self.config.model}: {self._message(err)} (check the model name and the key "
                                          f"in ${self.config.api_key_env})") from None
                    if status != 429 and status < 500:
                        self._count_failure(str(status))
                        raise RequestFailed(f"api refused the request: {status}", self._message(err)) from None
                    kind, last_error = str(status), f"{status} {self._message(err)}"
                    retry_after = _retry_after(err.response.headers)
                else:
                    usage = data.get("usage") or {}
                    self._limiter.settle(ticket, int(usage.get("total_tokens") or estimate))
                    return data
            with self._stats_lock:
                self._stats.errors[kind] += 1
            if attempt < self.config.max_retries:
                with self._stats_lock:
                    self._stats.retries += 1
                wait = self._backoff(attempt, retry_after)
                log.info("%s: %s; retry %d of %d in %.2f s", self.config.model, last_error, attempt + 1,
                         self.config.max_retries, wait)
                time.sleep(wait)
        log.warning("%s: giving up after %d retries: %s", self.config.model, self.config.max_retries, last_error)
        self._count_failure(kind)
        raise RequestFailed(f"api error after {self.config.max_retries} retries: {kind}", last_error)

    def _message(self, err: Any) -> str:
        """The API's own error message, short, with the key blanked should the provider echo it."""
        body = getattr(err, "body", None)
        if isinstance(body, dict):
            inner = body.get("error", body)
            text = str(inner.get("message") if isinstance(inner, dict) else inner)
        else:
            text = getattr(err, "message", "") or str(err)
        key = os.environ.get(self.config.api_key_env)
        return (text.replace(key, "***") if key else text)[:300]

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)  # the server knows when it will take us again
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter spreads out threads that failed together

    def _count_failure(self, kind: str) -> None:
        with self._stats_lock:
            self._stats.failures += 1
            self._consecutive_failures += 1
            stuck = self._consecutive_failures >= self.config.max_consecutive_failures
        if stuck:
            raise ClientFatal(f"{self.config.max_consecutive_failures} requests in a row failed (last: {kind}); "
                              f"{self.config.base_url or 'the API'} looks down. Rerun to resume: replies so far are cached")

    # -- the local engine ---------------------------------------------------------------------

    def _generate_local(self, bodies: Sequence[dict[str, Any]]) -> list[ChatReply | RequestFailed]:
        """Replies for `bodies` in order: cached ones read, the rest generated as one engine batch."""
        keys = [request_key(body) for body in bodies]
        results: dict[str, ChatReply | RequestFailed] = {}
        with self._engine_lock:
            todo: dict[str, dict[str, Any]] = {}
            for key, body in zip(keys, bodies):
                entry = None if key in results or key in todo else self.cache.get(key)
                if entry is not None:
                    results[key] = self._hit(entry, key)
                elif key not in results:
                    todo[key] = body
            if todo:
                if self._engine is None:
                    self._engine = _LocalEngine(self.config)
                with self._stats_lock:
                    self._stats.requests += len(todo)
                for (key, body), data in zip(todo.items(), self._engine.complete(list(todo.values()))):
                    if isinstance(data, RequestFailed):
                        self._count_failure("engine")
                        results[key] = data
                    else:
                        results[key] = self._from_entry(self._store(key, body, data), key, cached=False)
        return [results[key] for key in keys]


class _LocalEngine:
    """The m1 engine in-process, answering chat bodies exactly as m1 serve would: the body is parsed,
    turned into a budget policy and answered by `m1.engine.wire`, with the server's defaults."""

    def __init__(self, config: ClientConfig):
        from m1.engine import load_backend
        from m1.engine.default_model import default_preset
        from m1.engine.wire.protocol import Limits

        self.model = config.model
        self.backend = load_backend(config.backend, config.model, **config.backend_options)
        context = self.backend.max_context
        self.limits = Limits(max_context=context, max_thinking_tokens=context, default_preset=default_preset(config.model))

    def admit(self, body: dict[str, Any]) -> tuple[str, int, Any]:
        """(prompt text, prompt tokens, plan) for a body, or the `APIError` m1 serve would answer."""
        from dataclasses import replace

        from m1.engine.backends.base import answer_reserve
        from m1.engine.prompt import render_messages
        from m1.engine.wire.protocol import ChatRequest, build_policy, chat_messages, fit_answer_budget, parse

        tokenizer = self.backend.tokenizer
        request = parse(ChatRequest, body)
        plan = build_policy(request, self.limits, tokenizer, chat=True)
        text = render_messages(tokenizer, chat_messages(request), plan.policy)
        prompt_tokens = len(tokenizer.encode(text, add_special_tokens=False))
        prefix_tokens = answer_reserve(tokenizer, plan.policy) - plan.policy.max_answer_tokens
        policy = fit_answer_budget(plan.policy, prompt_tokens, prefix_tokens, self.limits,
                                   explicit=request.max_tokens is not None, param="messages")
        return text, prompt_tokens, replace(plan, policy=policy)

    def complete(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any] | RequestFailed]:
        import uuid

        from m1.engine.wire.errors import APIError
        from m1.engine.wire.responses import chat_response

        results: dict[int, dict[str, Any] | RequestFailed] = {}
        admitted = []
        for index, body in enumerate(bodies):
            try:
                admitted.append((index, *self.admit(body)))
            except APIError as err:
                results[index] = RequestFailed("local engine refused the request", err.message)
        records = self.backend.generate([text for _i, text, _n, _plan in admitted],
                                        [plan.policy for _i, _text, _n, plan in admitted]) if admitted else []
        for (index, _text, prompt_tokens, plan), record in zip(admitted, records):
            if record.error:
                results[index] = RequestFailed("local engine failed", record.error)
            else:
                results[index] = chat_response(f"chatcmpl-local-{uuid.uuid4().hex[:24]}", self.model, [record],
                                               plan.policy, prompt_tokens, plan.preset)
        return [results[index] for index in range(len(bodies))]


def parse_completion(data: Any) -> dict[str, Any]:
    """The fields a stage needs from a chat-completion body; `MalformedReply` if it is not one."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise MalformedReply("message.content is not text")
    except (KeyError, IndexError, TypeError) as err:
        raise MalformedReply(f"no choices[0].message ({type(err).__name__}: {err})") from None
    content = content or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    reasoning = reasoning if isinstance(reasoning, str) else ""
    closed = None  # inline tags say it themselves: an end tag closed the thinking, a lone start tag did not
    if not reasoning and "</think>" in content:
        found = _THINK_BLOCK.match(content)
        if found:
            reasoning, content, closed = found.group(1).strip(), content[found.end():], True
    elif not reasoning and content.lstrip().startswith("<think>"):
        reasoning, content, closed = content.lstrip()[len("<think>"):].strip(), "", False
    usage = data.get("usage") or {}
    details = usage.get("completion_tokens_details") or {}
    reply = _reply_fields(data, content, reasoning, choice.get("finish_reason"), usage.get("prompt_tokens"),
                          usage.get("completion_tokens"), details.get("reasoning_tokens"))
    if closed is not None:
        reply["thinking_closed"] = closed
    return reply


def parse_message(data: Any) -> dict[str, Any]:
    """`parse_completion`'s fields from an Anthropic Messages reply: thinking blocks are the
    reasoning, text blocks the content, stop_reason "max_tokens" a finish_reason of "length"."""
    try:
        blocks = data["content"]
        if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
            raise MalformedReply("content is not a list of blocks")
    except (KeyError, TypeError) as err:
        raise MalformedReply(f"no content blocks ({type(err).__name__}: {err})") from None
    thinking = "".join(block.get("thinking") or "" for block in blocks if block.get("type") == "thinking")
    text = "".join(block.get("text") or "" for block in blocks if block.get("type") == "text")
    finish = "length" if data.get("stop_reason") == "max_tokens" else "stop"
    usage = data.get("usage") or {}
    # Anthropic bills thinking inside output_tokens and reports no count of its own; m1 serve adds one.
    details = usage.get("output_tokens_details") or {}
    return _reply_fields(data, text, thinking, finish, usage.get("input_tokens"), usage.get("output_tokens"),
                         details.get("thinking_tokens"))


def _reply_fields(data: Any, content: str, reasoning: str, finish: str | None, prompt_tokens: Any,
                  completion_tokens: Any, reasoning_tokens: Any) -> dict[str, Any]:
    """The parsed reply both APIs give (`parse_completion`); reasoning with nothing after it, cut
    by length, is thinking that never closed."""
    return {
        "content": content,
        "reasoning": reasoning,
        "finish_reason": finish,
        "model": data.get("model") or "",
        "usage": {"prompt_tokens": int(prompt_tokens or 0), "completion_tokens": int(completion_tokens or 0),
                  "reasoning_tokens": int(reasoning_tokens or 0)},
        "reasoning_reported": reasoning_tokens is not None,
        "thinking_closed": not (reasoning and not content.strip() and finish == "length"),
    }


def _retry_after(headers: Any) -> float | None:
    """Seconds from `Retry-After` (or `retry-after-ms`); None when absent or a date we need not parse."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                continue
    return None
