"""The OpenAI-compatible backend: budgets and budget forcing against any completions endpoint.

    backend = OpenAIBackend("smollm2-135m", base_url="http://127.0.0.1:8011/v1")   # vLLM, SGLang, m1 serve…
    backend = OpenAIBackend("my-model", base_url=URL, tokenizer="Qwen/Qwen2.5-7B-Instruct")

Each sample runs its own sequence of `/v1/completions` requests (a thread each, up to
`concurrency` at once), so a sample waiting for its "Wait" round never holds up another. Every
request asks for exactly what is left of that sample's budget (`max_tokens`), so no sample can
exceed B. Where the server returns generated token ids (vLLM's `return_token_ids`, m1 serve), the
next round sends token ids and counts are exact; otherwise it sends text and counts come from the
server's `usage` (documented as approximate for stop rounds, where servers differ on whether the
stop token is counted). Timeouts and retries with exponential backoff on 429, 5xx and connection
errors are the `openai` client's own. The API key is read from the environment variable named by
`api_key_env` and never stored elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from threading import Lock
from typing import Any

from m1.engine.backends.base import (
    OnText,
    StopMatcher,
    answer_reserve,
    fail_if_prompt_too_long,
    load_tokenizer,
    per_prompt_policies,
    round_limit,
)
from m1.engine.controller import GenerationRecord, RoundOutput, SampleController
from m1.engine.default_model import resolve_model
from m1.engine.policy import BudgetPolicy


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
        trust_remote_code: bool = False,
        keep_trace: bool = False,
    ):
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
        self.token_ids = token_ids
        self.keep_trace = keep_trace
        self.stops = StopMatcher(self.tokenizer)

    def generate(
        self,
        prompts: Sequence[str],
        policy: BudgetPolicy | Sequence[BudgetPolicy],
        *,
        on_text: OnText | None = None,
        on_done: Callable[[int, GenerationRecord], None] | None = None,
    ) -> list[GenerationRecord]:
        policies = per_prompt_policies(prompts, policy)
        callback_lock = Lock()  # callbacks may append to files; run them one at a time

        def run(index: int) -> GenerationRecord:
            record = self._run_sample(index, prompts[index], policies[index], on_text, callback_lock)
            if on_done is not None:
                with callback_lock:
                    on_done(index, record)
            return record

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(run, range(len(prompts))))

    def _run_sample(self, index: int, prompt: str, policy: BudgetPolicy,
                    on_text: OnText | None, lock: Lock) -> GenerationRecord:
        controller = SampleController(policy)
        context_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        context_text = prompt
        reserve = answer_reserve(self.tokenizer, policy)
        fail_if_prompt_too_long(controller, len(context_ids), reserve, self.max_context)
        use_ids = self.token_ids  # falls back to text for good if the server returns no token ids
        while (step := controller.next_step()) is not None:
            insert_ids = self.tokenizer.encode(step.insert, add_special_tokens=False) if step.insert else []
            context_ids = context_ids + insert_ids
            context_text += step.insert
            if self.keep_trace and insert_ids:
                controller.add_trace("inserted", insert_ids)
            limit = round_limit(step, len(context_ids), reserve, self.max_context)
            if limit == 0:
                controller.record_round(RoundOutput("", 0, False, ()), inserted_tokens=len(insert_ids))
                continue
            try:
                output = self._complete(context_ids if use_ids else context_text, limit, step.stops,
                                        policy, use_ids)
            except Exception as err:  # noqa: BLE001 - one sample's failure must not end the batch
                controller.fail(f"request failed after retries: {type(err).__name__}: {err}")
                break
            if output.token_ids is None:
                use_ids = False
            context_ids = context_ids + list(output.token_ids or ())
            context_text += output.text
            if self.keep_trace and output.token_ids is not None:
                controller.add_trace("generated", list(output.token_ids))
            if on_text is not None:
                with lock:
                    for text, inserted in ((step.insert, True), (output.text, False)):
                        if text:
                            on_text(index, step.phase, text, inserted)
            controller.record_round(output, inserted_tokens=len(insert_ids))
        return controller.record(prompt)

    def _complete(self, prompt: list[int] | str, limit: int, stops: tuple[str, ...], policy: BudgetPolicy,
                  want_ids: bool) -> RoundOutput:
        sampling = policy.sampling
        single = [ids[0] for ids in (self.tokenizer.encode(s, add_special_tokens=False) for s in stops) if len(ids) == 1]
        extra: dict[str, Any] = {"skip_special_tokens": False, "include_stop_str_in_output": False}
        if want_ids:
            extra |= {"return_token_ids": True, "stop_token_ids": single}
        response = self.client.completions.create(
            model=self.served_model,
            prompt=prompt,
            max_tokens=limit,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=None if sampling.temperature == 0 else sampling.seed,  # per sample: see per_prompt_policies
            stop=list(stops) or None,
            extra_body=extra,
        )
        choice = response.choices[0]
        stopped = choice.finish_reason == "stop"
        ids = (choice.model_extra or {}).get("token_ids") if want_ids else None
        if ids is not None:
            ids = list(ids)
            if stopped:
                ids = self.stops.strip(ids, stops)
            text = self.tokenizer.decode(ids, skip_special_tokens=False)
            return RoundOutput(text, len(ids), stopped, tuple(ids))
        used = response.usage.completion_tokens if response.usage else 0
        # Without ids: a stop round's usage usually includes the stop token, which is not thinking.
        count = min(limit, max(0, used - 1) if stopped and used else used)
        return RoundOutput(choice.text, count, stopped, None)
