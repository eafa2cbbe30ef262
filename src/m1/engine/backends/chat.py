"""The native-budget chat backend: a reasoning API enforces its own thinking budget, m1 asks and counts.

    backend = ChatBackend("o4-mini", dialect="openai", base_url="https://api.openai.com/v1",
                          api_key_env="OPENAI_API_KEY", send_sampling=False,
                          price_input_per_million=1.1, price_output_per_million=4.4)
    backend = ChatBackend("smollm2-135m", dialect="vllm", base_url="http://127.0.0.1:8000/v1",
                          think_prefill="<think>\\n")
    records = backend.generate(messages_per_item, policies, effort="low")

Hosted reasoning models and other servers speak chat only and keep their thinking budget to
themselves; this backend sends each item as one chat request with the budget in the dialect's own
field, and records what came back. Nothing here ends or extends thinking: the server does, and
the evaluation's budget audit (`m1.evaluation.audit`) says how well.

A grid point's budget B (and the answer room A, `policy.max_answer_tokens`) become, per dialect:

    openai     max_completion_tokens B + A: OpenAI's only numeric limit caps thinking and answer
               together, so it does not cap thinking alone (the audit shows by how much thinking
               used the answer's share); the effort axis goes as reasoning_effort
    anthropic  thinking {"type": "enabled", "budget_tokens": B} and max_tokens B + A
    vllm       thinking_token_budget B (vLLM needs --reasoning-config for it) and max_tokens B + A
    llamacpp   thinking_budget_tokens B and max_tokens B + A

`max_total_tokens` (an option) replaces B + A by one fixed total for every request. What a
dialect has no field for ("Wait" rounds, a minimum, early exit, probabilities) is refused when the
evaluation config is read (`check_dialect_policy`), never silently dropped.

The thinking is read from `reasoning_content`, Anthropic's thinking blocks or a `<think>` span
left in the content; with `think_prefill` (vLLM, llama.cpp: the assistant turn starts with the
think-start string, `continue_final_message`, so the model thinks from its first token) a reply
without the end tag is thinking that never closed. Counts: the provider's reasoning tokens where
it reports them, and m1's own count of the returned thinking with the model's tokenizer where one
is known (`tokenizer`, or a model m1 has locally); both are kept (`GenerationRecord.api`).

Transport is the engine's chat client (`m1.engine.client`): a request cache keyed by the body (a
rerun pays nothing), concurrency and rate limits, retries with backoff on 429/5xx/timeouts,
cost from the price table, keys only from the environment variable `api_key_env`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from m1.engine.client import ChatClient, ChatReply, ClientConfig, RequestFailed
from m1.engine.controller import GenerationRecord
from m1.engine.default_model import MODEL_REGISTRY
from m1.engine.policy import BudgetPolicy

Dialect = Literal["openai", "anthropic", "vllm", "llamacpp"]
DIALECTS: tuple[str, ...] = ("openai", "anthropic", "vllm", "llamacpp")
# The field each dialect's thinking budget goes in, for error messages and the record.
BUDGET_FIELDS = {"openai": "max_completion_tokens", "anthropic": "thinking.budget_tokens",
                 "vllm": "thinking_token_budget", "llamacpp": "thinking_budget_tokens"}
EFFORT_DIALECTS = ("openai",)
PREFILL_DIALECTS = ("vllm", "llamacpp")
DEFAULT_CACHE = Path("runs") / "chat-cache"


def check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ValueError(f"backend_options.dialect: unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")


def check_dialect_policy(dialect: str, policy: BudgetPolicy, *, effort: str | None = None) -> None:
    """A ValueError naming the field when `policy` asks for what `dialect` cannot send."""
    check_dialect(dialect)
    refused = [("grid.num_extensions", policy.num_extensions > 0, '"Wait" rounds'),
               ("policy.min_thinking_tokens", policy.min_thinking_tokens is not None, "a minimum of thinking"),
               ("grid.early_exit", policy.early_exit is not None, "early exit"),
               ("calibration", policy.answer_probability, "the answer letters' probabilities"),
               ("policy.answer_logprobs", policy.answer_logprobs is not None, "answer token log-probabilities"),
               ("policy.max_total_tokens", policy.max_total_tokens is not None,
                "m1's total cap (use backend_options.max_total_tokens)")]
    for name, asked, what in refused:
        if asked:
            raise ValueError(f"{name}: the chat backend's {dialect} dialect has no field for {what}; the server "
                             f"controls thinking itself (only the budget goes as {BUDGET_FIELDS[dialect]})")
    if effort is not None and dialect not in EFFORT_DIALECTS:
        raise ValueError(f"grid.effort: the {dialect} dialect has no effort level; only "
                         f"{', '.join(EFFORT_DIALECTS)} sends reasoning_effort (use grid.max_thinking_tokens)")


class ChatBackend:
    name = "chat"
    chat = True  # takes chat messages, not rendered prompts (the runner asks)

    def __init__(
        self,
        model: str,
        *,
        dialect: Dialect = "openai",
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        served_model: str | None = None,
        tokenizer: str | None = None,
        send_sampling: bool = True,
        think_prefill: str | None = None,
        max_total_tokens: int | None = None,
        price_input_per_million: float = 0.0,
        price_output_per_million: float = 0.0,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout: float = 600.0,
        max_retries: int = 5,
        cache_dir: str | Path | None = None,
        trust_remote_code: bool = False,
    ):
        check_dialect(dialect)
        if think_prefill is not None and dialect not in PREFILL_DIALECTS:
            raise ValueError(f"backend_options.think_prefill: the {dialect} dialect cannot continue an assistant "
                             f"turn; only {', '.join(PREFILL_DIALECTS)} can")
        self.model_name, self.dialect = model, dialect
        self.send_sampling, self.think_prefill, self.max_total_tokens = send_sampling, think_prefill, max_total_tokens
        self.client = ChatClient(ClientConfig(
            kind="anthropic" if dialect == "anthropic" else "openai", model=served_model or model, base_url=base_url,
            api_key_env=api_key_env, temperature=None, max_tokens=None,
            max_tokens_field="max_completion_tokens" if dialect == "openai" else "max_tokens",
            timeout=timeout, max_retries=max_retries, max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
            price_input_per_million=price_input_per_million, price_output_per_million=price_output_per_million),
            cache_dir=Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE)
        self.tokenizer = _recount_tokenizer(tokenizer, model, trust_remote_code)

    def generate(
        self,
        prompts: Sequence[list[dict[str, str]]],
        policy: BudgetPolicy | Sequence[BudgetPolicy],
        *,
        effort: str | None = None,
        send_budget: bool = True,
        on_done: Callable[[int, GenerationRecord], None] | None = None,
        **_unused: Any,  # choices, on_text, on_probe: nothing to probe or stream on a native-budget API
    ) -> list[GenerationRecord]:
        """One record per conversation. `effort`: the reasoning_effort level to send; `send_budget`
        False sends no thinking budget (an effort-only grid point), True the policy's B."""
        policies = [policy] * len(prompts) if isinstance(policy, BudgetPolicy) else list(policy)
        for each in policies:
            check_dialect_policy(self.dialect, each, effort=effort)
        conversations = [self._messages(messages) for messages in prompts]
        fields = [self.request_fields(each, effort, send_budget) for each in policies]
        records = []
        for index, (messages, each, reply) in enumerate(zip(prompts, policies,
                                                            self.client.chat_many(conversations, fields=fields))):
            record = self._record(messages, each, effort, send_budget, reply)
            records.append(record)
            if on_done is not None:
                on_done(index, record)
        return records

    def request_fields(self, policy: BudgetPolicy, effort: str | None = None, send_budget: bool = True) -> dict[str, Any]:
        """The body fields of one request besides model and messages (see the module docstring)."""
        budget = policy.max_thinking_tokens if policy.thinking and send_budget else None
        total = self.max_total_tokens
        if total is None and budget is not None:
            total = budget + policy.max_answer_tokens
        if total is None and self.dialect != "openai":
            total = policy.max_answer_tokens  # every other dialect needs max_tokens (Anthropic requires it)
        fields: dict[str, Any] = {}
        if self.dialect == "openai":
            if effort is not None:
                fields["reasoning_effort"] = effort
            if total is not None:
                fields["max_completion_tokens"] = total
        else:
            fields["max_tokens"] = total
            if self.dialect == "anthropic":
                fields["thinking"] = ({"type": "enabled", "budget_tokens": budget} if budget is not None
                                      else {"type": "disabled"})
            elif budget is not None:
                fields[BUDGET_FIELDS[self.dialect]] = budget
        if self.think_prefill is not None:
            fields |= {"continue_final_message": True, "add_generation_prompt": False}
        if self.send_sampling:
            sampling = policy.sampling
            fields |= {"temperature": sampling.temperature, "top_p": sampling.top_p}
            if sampling.temperature > 0 and self.dialect != "anthropic" and sampling.seed is not None:
                fields["seed"] = sampling.seed
        return fields

    def _messages(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        if self.think_prefill is None:
            return list(messages)
        return [*messages, {"role": "assistant", "content": self.think_prefill}]

    def _record(self, messages: list[dict[str, str]], policy: BudgetPolicy, effort: str | None, send_budget: bool,
                reply: ChatReply | RequestFailed) -> GenerationRecord:
        prompt = "\n".join(m["content"] for m in messages)
        budget = policy.max_thinking_tokens if policy.thinking and send_budget else None
        requested = {"dialect": self.dialect, "budget": budget, "effort": effort,
                     "field": BUDGET_FIELDS[self.dialect] if budget is not None else None}
        if isinstance(reply, RequestFailed):
            return GenerationRecord(prompt=prompt, error=str(reply),
                                    api={"requested": requested, "thinking_count": "none"})
        thinking, content, closed = reply.reasoning, reply.content, reply.thinking_closed
        if self.think_prefill is not None and not thinking:
            # The prefill opened the thinking: a server without a reasoning parser returns it inline.
            end = "</think>"
            if end in content:
                thinking, content = content[:content.index(end)].strip(), content[content.index(end) + len(end):]
            else:
                thinking, content, closed = content.strip(), "", False
        reported = reply.usage["reasoning_tokens"] if reply.reasoning_reported else None
        recounted = (len(self.tokenizer.encode(thinking, add_special_tokens=False))
                     if self.tokenizer is not None else None)
        count = "provider" if reported is not None else "recount" if recounted is not None else "none"
        thinking_tokens = reported if reported is not None else recounted or 0
        answer_tokens = max(0, reply.usage["completion_tokens"] - thinking_tokens)
        record = GenerationRecord(
            prompt=prompt, thinking=thinking, answer=content, reply=content, thinking_tokens=thinking_tokens,
            answer_tokens=answer_tokens, thinking_end=("natural_stop" if closed else "budget_reached")
            if thinking else "no_thinking", answer_end="length" if reply.truncated else "stop",
            api={"requested": requested, "reported_thinking_tokens": reported,
                 "recounted_thinking_tokens": recounted, "thinking_count": count, "thinking_closed": closed,
                 "finish_reason": reply.finish_reason, "cost": reply.cost, "usage": reply.usage,
                 "cached": reply.cached})
        record.add_span("generated", thinking)
        record.add_span("generated", content)
        return record


def _recount_tokenizer(name: str | None, model: str, trust_remote_code: bool) -> Any:
    """The tokenizer m1 recounts thinking with: the one named, else the model's when m1 has it
    locally (a registry alias or a folder); None for a hosted model m1 cannot tokenize."""
    from m1.engine.backends.base import load_tokenizer
    from m1.engine.default_model import resolve_model

    if name is None and model not in MODEL_REGISTRY and not Path(model).is_dir():
        return None
    return load_tokenizer(resolve_model(name or model), trust_remote_code=trust_remote_code)
