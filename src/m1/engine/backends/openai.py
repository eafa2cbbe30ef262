"""The OpenAI-compatible backend: budgets, budget forcing and early exit against any completions endpoint.

    backend = OpenAIBackend("smollm2-135m", base_url="http://127.0.0.1:8011/v1")   # vLLM, SGLang, m1 serve…
    backend = OpenAIBackend("my-model", base_url=URL, tokenizer="Qwen/Qwen2.5-7B-Instruct")
    backend = OpenAIBackend("my-model", base_url=URL, logprobs=False)             # a server without logprobs

The round loop is the engine's (`m1.engine.rounds.drive`); this module only turns a round into a
`/v1/completions` request. Requests run on a thread pool (up to `concurrency` at once) and each
sample's next round goes in the moment its last one returns, so a sample waiting for its "Wait"
round never holds up another. Every request asks for exactly what is left of that sample's budget
(`max_tokens`), so no sample can exceed B. Callbacks run on the calling thread, one at a time.

Token ids: where the server returns the generated ids (vLLM's `return_token_ids`, m1 serve), the
next round sends ids and counts are exact; otherwise it sends text and counts come from the
server's `usage` (approximate for stop rounds, where servers differ on whether the stop token is
counted). A one-token stop goes as `stop_token_ids` only, as the other backends match it by id.

Early exit: a probe is a separate request on the thinking so far plus the answer prefix (the
server's prefix cache makes the shared part free). Multiple choice reads the option letters from
one token's `top_logprobs`; free-form decodes a greedy trial answer with `logprobs=1`. A server
that returns no logprobs, or refuses the field (a 400), gets trial answers without
probabilities from then on, and the probe's note says why (the controller then decides by
`consistency` and says so in `exit_rule`). `answer_probability`'s read at the forced answer is
such a probe, so there it is a trial answer without probability, with the same note: the sample
goes on. Transition strings ("pauses") go as extra stop strings; the round's ids (vLLM includes a
stop string's tokens) or, in text mode, the stop string kept in the text
(`include_stop_str_in_output`) show which stop fired. A server that does not report
`stop_reason` (m1 serve strips stops from its ids) cannot show that, so its rounds are re-sent
without pauses, for good, and it is probed only every `every` tokens.

Timeouts and retries with exponential backoff on 429, 5xx and connection errors are the `openai`
client's own; a request that still fails fails its sample, and the batch goes on. The API key is
read from the environment variable named by `api_key_env` and never stored elsewhere.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from m1.engine.backends.base import OnText, StopMatcher, load_tokenizer
from m1.engine.controller import GenerationRecord, ProbeResult
from m1.engine.default_model import resolve_model
from m1.engine.policy import BudgetPolicy, Sampling
from m1.engine.probe import TOP_LOGPROBS, read_letter_strings, read_trial
from m1.engine.rounds import Generated, OnProbe, RequestFailed, RoundRequest, drive, start_runs


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str = "smollm2-135m",
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        served_model: str | None = None,
        tokenizer: str | None = None,
        max_context: int | None = None,
        concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 5,
        token_ids: bool = True,
        logprobs: bool | None = None,
        trust_remote_code: bool = False,
        keep_trace: bool = False,
    ):
        """`logprobs`: None finds out on the first probe; False says the server has none (no field is sent)."""
        from openai import OpenAI

        self.model_name = model
        self.served_model = served_model or model
        # The tokenizer renders chat prompts and turns inserted strings into ids; it must match the server's.
        self.tokenizer = load_tokenizer(resolve_model(tokenizer or model), trust_remote_code=trust_remote_code)
        self.max_context = max_context or getattr(self.tokenizer, "model_max_length", 32768)
        if self.max_context > 10**7:  # tokenizers without a limit report a huge sentinel
            self.max_context = 32768
        self.client = OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "EMPTY",
                             timeout=timeout, max_retries=max_retries)
        self.concurrency = concurrency
        self.keep_trace = keep_trace
        self.stops = StopMatcher(self.tokenizer)
        self.logprobs = logprobs
        # What the server has shown it can do; each only ever turns False, for the backend's lifetime.
        self._ids = token_ids
        self._logprobs = logprobs
        self._pauses = True
        self._no_logprobs = "no logprobs: the backend was told the server has none (logprobs=False)"

    def generate(
        self,
        prompts: Sequence[str],
        policy: BudgetPolicy | Sequence[BudgetPolicy],
        *,
        on_text: OnText | None = None,
        on_done: Callable[[int, GenerationRecord], None] | None = None,
        choices: Sequence[Sequence[str] | None] | None = None,
        on_probe: OnProbe | None = None,
    ) -> list[GenerationRecord]:
        self._refuse_unreadable_confidence(policy)
        runs = start_runs(prompts, policy, choices=choices, tokenizer=self.tokenizer, stops=self.stops,
                          max_context=self.max_context, keep_trace=self.keep_trace, on_text=on_text,
                          on_probe=on_probe)
        finished = None if on_done is None else (lambda run: on_done(run.index, run.record()))
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return drive(runs, _PooledRequests(pool, self._serve), on_done=finished)

    def _refuse_unreadable_confidence(self, policy: BudgetPolicy | Sequence[BudgetPolicy]) -> None:
        """`confidence` needs probabilities; a server declared without logprobs has none to give."""
        policies = [policy] if isinstance(policy, BudgetPolicy) else policy
        if self.logprobs is False and any(p.early_exit and p.early_exit.method == "confidence" for p in policies):
            raise ValueError("early_exit.method: 'confidence' needs the answer's probability, and this OpenAI "
                             "backend was built with logprobs=False (the server returns none); use method "
                             "'consistency', or logprobs=None to let the backend ask the server")

    def _serve(self, request: RoundRequest) -> tuple[RoundRequest, Generated | ProbeResult]:
        """One request to the server; the request comes back as it was sent (pauses may be left out)."""
        if request.is_probe:
            return request, self._probe(request)
        if request.step.pauses and not self._pauses:
            request = dataclasses.replace(request, step=dataclasses.replace(request.step, pauses=()))
        return self._round(request)

    # ------------------------------------------------------------------ rounds

    def _round(self, request: RoundRequest) -> tuple[RoundRequest, Generated]:
        step, ids = request.step, self._ids
        # In text mode the kept stop string is the only sign of which stop fired.
        # Text cannot be cut back to `keep` afterwards, so text mode asks for no lookahead.
        response = self._create(request, ids, step.stops, step.pauses, request.limit if ids else request.keep,
                                request.policy.sampling,
                                include_stop=bool(step.pauses) and not ids)
        choice = response.choices[0]
        extra = choice.model_extra or {}
        stopped = choice.finish_reason == "stop"
        if step.pauses and stopped and "stop_reason" not in extra:
            self._pauses = False  # a pause could not be told from a think stop: again, without pauses
            return self._serve(request)
        token_ids = extra.get("token_ids") if ids else None
        if token_ids is not None:
            return request, Generated(list(token_ids), stopped)
        self._ids = False
        used = response.usage.completion_tokens if response.usage else 0
        # A stop round's usage usually counts the stop token, which is not kept, unless a pause kept it.
        kept_stop = any(choice.text.endswith(pause) for pause in step.pauses)
        count = max(0, used - 1) if stopped and not kept_stop else used
        return request, Generated(None, stopped, choice.text, count)

    def _create(self, request: RoundRequest, ids: bool, stops: tuple[str, ...], pauses: tuple[str, ...],
                max_tokens: int, sampling: Sampling, *, include_stop: bool = False, **fields: Any) -> Any:
        """A completions call on the request's context, as ids or as text; `fields` go as they are (logprobs)."""
        extra: dict[str, Any] = {"skip_special_tokens": False, "include_stop_str_in_output": include_stop}
        strings = list(dict.fromkeys(stops + pauses))
        if ids:
            single = {stop: ids[0] for stop in stops
                      if len(ids := self.tokenizer.encode(stop, add_special_tokens=False)) == 1}
            extra |= {"return_token_ids": True, "stop_token_ids": list(single.values())}
            strings = [s for s in strings if s not in single]
        return self.client.completions.create(
            model=self.served_model,
            prompt=request.context if ids else request.text,
            max_tokens=max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=None if sampling.temperature == 0 else sampling.seed,  # per sample: see per_prompt_policies
            stop=strings or None,
            extra_body=extra,
            **fields,
        )

    # ------------------------------------------------------------------ probes

    def _probe(self, request: RoundRequest) -> ProbeResult:
        from openai import BadRequestError

        started, ids = time.perf_counter(), self._ids
        step, greedy = request.step, request.policy.sampling.model_copy(update={"temperature": 0.0, "top_p": 1.0})
        note, spent = self._no_logprobs, 0
        if self._logprobs is not False:
            try:
                response = self._create(request, ids, step.stops, (), request.limit, greedy,
                                        logprobs=TOP_LOGPROBS if step.choices else 1)
            except BadRequestError as err:  # m1 serve refuses fields it does not implement
                response, note = None, f"no logprobs: the server refused them ({_error_message(err)})"
            read = None if response is None else _read_logprobs(response, step.choices, request.inserted, started)
            if read is not None:
                self._logprobs = True
                return read
            if response is not None:
                note = "no logprobs: the server returned none"
            if step.answer_read:  # the server answered without probabilities: that is what it has
                self._no_logprobs, self._logprobs = note, False
                spent = 0 if response is None else request.inserted + _used(response)
        if step.answer_read:
            # The calibration read is a letter distribution: without probabilities there is nothing to
            # read (a trial answer would only repeat the answer that follows).
            return ProbeResult(None, None, "trial", spent, time.perf_counter() - started, note=note)
        # Without probabilities a letter is read from a short trial answer too (it may follow a few words).
        size = request.limit if not step.choices else max(
            1, min(request.policy.trial_tokens, self.max_context - len(request.context)))
        response = self._create(request, ids, step.stops, (), size, greedy)
        if self._logprobs is not False:  # the trial worked: the field was the trouble
            self._no_logprobs = note  # first, so that another thread never sees False with the old note
            self._logprobs = False
        answer, _ = read_trial(response.choices[0].text, None, step.choices)
        return ProbeResult(answer, None, "trial", request.inserted + _used(response), time.perf_counter() - started,
                           note=note)


def _read_logprobs(response: Any, choices: tuple[str, ...] | None, inserted: int, started: float) -> ProbeResult | None:
    """A probe's read from its logprobs (letters, or a trial answer's); None if the server gave none."""
    choice = response.choices[0]
    logprobs = choice.logprobs
    if choices:
        top = logprobs.top_logprobs if logprobs is not None else None
        if not top or not top[0]:
            return None
        read = read_letter_strings({token: math.exp(value) for token, value in top[0].items()}, choices)
        # A letter read is one forward over the insert (the token sampled with it costs nothing more).
        return ProbeResult.from_letters(read, inserted, time.perf_counter() - started)
    values = logprobs.token_logprobs if logprobs is not None else None
    if not values:
        return None
    # The token that ended the answer counts too: stopping is part of the model's answer.
    answer, probability = read_trial(choice.text, [math.exp(v) for v in values if v is not None], None)
    return ProbeResult(answer, probability, "trial", inserted + _used(response), time.perf_counter() - started)


def _used(response: Any) -> int:
    return response.usage.completion_tokens if response.usage else 0


def _error_message(err: Any) -> str:
    message = err.body.get("message") if isinstance(err.body, dict) else None
    return f"HTTP 400: {message or err}"


class _PooledRequests:
    """`drive`'s executor: each request is a call on the thread pool; `wait` returns the first finished."""

    def __init__(self, pool: ThreadPoolExecutor, serve: Callable[[RoundRequest], tuple[RoundRequest, Any]]):
        self.pool, self.serve = pool, serve
        self.running: dict[Future, RoundRequest] = {}

    def submit(self, request: RoundRequest) -> None:
        self.running[self.pool.submit(self.serve, request)] = request

    def wait(self) -> list[tuple[RoundRequest, Generated | ProbeResult | BaseException]]:
        done, _ = wait(self.running, return_when=FIRST_COMPLETED)
        finished: list[tuple[RoundRequest, Generated | ProbeResult | BaseException]] = []
        for future in sorted(done, key=lambda f: self.running[f].index):  # same order whatever the timing
            request = self.running.pop(future)
            err = future.exception()
            if err is None:
                finished.append(future.result())
            elif isinstance(err, Exception):  # this sample fails; the others go on
                finished.append((request, RequestFailed(f"request failed after retries: {type(err).__name__}: {err}")))
            else:
                raise err
        return finished

    @property
    def pending(self) -> int:
        return len(self.running)
