"""Anthropic's Messages API (`POST /v1/messages`) in m1's terms, with no web framework.

    from anthropic import Anthropic
    client = Anthropic(base_url="http://127.0.0.1:8000", api_key="unused")
    reply = client.messages.create(model="smollm2-135m", max_tokens=256, system="Be brief.",
                                   messages=[{"role": "user", "content": "What is 2+2?"}],
                                   thinking={"type": "enabled", "budget_tokens": 128},
                                   extra_body={"num_extensions": 2})
    reply.content[0].thinking, reply.content[1].text, reply.usage.model_extra["m1"]

A request (`MessagesRequest`, parsed as strictly as the OpenAI ones: unknown fields and wrong
types are a 400 naming the field) becomes an OpenAI `ChatRequest` (`to_chat_request`) that goes
through the same `build_policy` as /v1/chat/completions:

    thinking {"type": "enabled", "budget_tokens": N}   thinking_budget N: an exact cap. Anthropic
                                  requires N ≥ 1024; m1 takes any N ≥ 1, because its budgets are
                                  exact (a budget of 16 thinks at most 16 tokens). N < max_tokens.
    thinking {"type": "disabled"} or none                 the no-think preset
    max_tokens (required)         max_completion_tokens: thinking + answer together, as Anthropic counts
    system (string or text blocks)                        a system message
    stop_sequences                stop; temperature, top_p as they are; top_k, tools, tool_choice,
                                  service_tier only at their neutral value; metadata is ignored
    messages                      text content; thinking and redacted_thinking blocks of an earlier
                                  reply are accepted and not rendered (the template has no place for them)
    m1's own fields (extra_body)  num_extensions, extension_str, min_thinking_tokens, budget_preset
                                  (a thinking preset with thinking enabled), early_exit, stream_probes

The reply is a `message` with a `thinking` block (the thinking as the model saw it, "Wait" rounds
included; `signature` is empty: m1 signs nothing) when thinking is enabled and a `text` block (the
answer), `stop_reason` "end_turn" or "max_tokens", and `usage` with `input_tokens`,
`output_tokens` (thinking + answer generated), `output_tokens_details.thinking_tokens` and m1's
account under `m1`, as in the OpenAI replies. An answer ended by a stop sequence is reported as
"end_turn" with `stop_sequence` null: the engine's record does not say which stop string ended it.
A stream sends Anthropic's event sequence (`AnthropicStream`); a probe (`stream_probes`) is an
event of its own, `m1_probe` (the SDK passes it on as an event of that type; code that reads only
Anthropic's event types passes over it). Errors have Anthropic's shape (`error_body`),
so the anthropic client raises its own exception classes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

from m1.engine.controller import GenerationRecord
from m1.engine.policy import BudgetPolicy
from m1.engine.wire.errors import APIError, bad_request
from m1.engine.wire.protocol import ChatRequest, M1Fields
from m1.engine.wire.responses import usage, visible_answer

ROUTE = "/v1/messages"

# Anthropic fields m1 does not implement, and the values that mean "not asked for".
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "top_k": (None,), "tools": (None, []), "tool_choice": (None, {"type": "none"}),
    "service_tier": (None, "auto", "standard_only"),
}
IGNORED = ("metadata",)
# m1's errors in Anthropic's error types (the rest are named alike).
ERROR_TYPES = {"server_error": "api_error"}
# Where a ChatRequest field's error names a field the Anthropic client sent under another name.
RENAMED = {"thinking_budget": "thinking.budget_tokens", "max_completion_tokens": "max_tokens",
           "stop": "stop_sequences"}
# The fields each kind of content block holds.
BLOCK_FIELDS = {"text": ("text",), "thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheControl(_Strict):
    """Anthropic's prompt-caching mark on a block. Accepted and not acted on: it changes no reply,
    and m1's engines keep no per-request cache to point it at (vLLM caches shared prefixes itself)."""

    type: Literal["ephemeral"]
    ttl: StrictStr | None = None


class ContentBlock(_Strict):
    """A block of a message: text, or the thinking of an earlier reply sent back (not rendered).
    Which fields a block needs is checked by `to_chat_request`, naming the field."""

    type: Literal["text", "thinking", "redacted_thinking"]
    text: StrictStr | None = None
    thinking: StrictStr | None = None
    signature: StrictStr | None = None
    data: StrictStr | None = None
    citations: None = None  # a reply's text block sent back as the SDK holds it
    cache_control: CacheControl | None = None


class Message(_Strict):
    role: Literal["user", "assistant"]
    content: StrictStr | list[ContentBlock]


class SystemBlock(_Strict):
    type: Literal["text"]
    text: StrictStr
    citations: None = None
    cache_control: CacheControl | None = None


class ThinkingConfig(_Strict):
    type: Literal["enabled", "disabled"]
    budget_tokens: StrictInt | None = None


class MessagesRequest(M1Fields):  # m1's own fields come through extra_body
    model: StrictStr
    max_tokens: StrictInt
    messages: list[Message]
    system: StrictStr | list[SystemBlock] | None = None
    thinking: ThinkingConfig | None = None
    stop_sequences: list[StrictStr] | None = None
    temperature: StrictFloat | StrictInt | None = None
    top_p: StrictFloat | StrictInt | None = None
    stream: StrictBool | None = False


def _text(content: str | list[ContentBlock], where: str) -> str | list[dict[str, str]]:
    """A message's content for the chat template: its text blocks; thinking blocks are dropped."""
    if isinstance(content, str):
        return content
    parts = []
    for index, block in enumerate(content):
        needed = BLOCK_FIELDS[block.type]
        for name in needed:
            if getattr(block, name) is None:
                raise bad_request(f"{where}.{index}.{name} is required in a {block.type} block",
                                  f"{where}.{index}.{name}", "missing_parameter")
        for name in {field for fields in BLOCK_FIELDS.values() for field in fields} - set(needed):
            if getattr(block, name) is not None:
                raise bad_request(f"{where}.{index}.{name} does not belong in a {block.type} block",
                                  f"{where}.{index}.{name}")
        if block.type == "text":
            parts.append({"type": "text", "text": block.text})
    return parts


def to_chat_request(request: MessagesRequest) -> ChatRequest:
    """The OpenAI chat request that asks the engine for the same thing (see the module docstring)."""
    if request.max_tokens < 1:
        raise bad_request(f"max_tokens must be at least 1; got {request.max_tokens}", "max_tokens")
    if not request.messages:
        raise bad_request("messages is empty", "messages")
    thinking = request.thinking
    fields: dict[str, Any] = {}
    if thinking is not None and thinking.type == "enabled":
        budget = thinking.budget_tokens
        if budget is None:
            raise bad_request("thinking.budget_tokens is required when thinking.type is 'enabled'",
                              "thinking.budget_tokens", "missing_parameter")
        if budget < 1:
            raise bad_request(f"thinking.budget_tokens must be at least 1; got {budget}", "thinking.budget_tokens")
        if budget >= request.max_tokens:
            raise bad_request(f"thinking.budget_tokens ({budget}) must be less than max_tokens ({request.max_tokens}): "
                              "max_tokens caps thinking and answer together, so the answer needs room too",
                              "thinking.budget_tokens")
        if request.budget_preset == "no-think":
            raise bad_request("budget_preset 'no-think' does not think, and thinking.type is 'enabled': "
                              "send one or the other", "budget_preset")
        fields["thinking_budget"] = budget
        fields["budget_preset"] = request.budget_preset
    else:
        if thinking is not None and thinking.budget_tokens is not None:
            raise bad_request("thinking.budget_tokens is read only when thinking.type is 'enabled'",
                              "thinking.budget_tokens")
        if request.budget_preset not in (None, "no-think"):
            raise bad_request(f"budget_preset {request.budget_preset!r} thinks, and thinking is not enabled: send "
                              'thinking: {"type": "enabled", "budget_tokens": N} to think', "budget_preset")
        fields["budget_preset"] = "no-think"
    messages: list[dict[str, Any]] = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "\n".join(b.text for b in request.system)
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(request.messages):
        messages.append({"role": message.role, "content": _text(message.content, f"messages.{index}.content")})
    for name in ("temperature", "top_p", "stream", "num_extensions", "extension_str", "min_thinking_tokens",
                 "early_exit", "stream_probes"):
        if getattr(request, name) is not None:
            fields[name] = getattr(request, name)
    return ChatRequest.model_validate({"model": request.model, "messages": messages,
                                       "max_completion_tokens": request.max_tokens,
                                       "stop": request.stop_sequences, **fields})


@contextmanager
def renamed_params() -> Iterator[None]:
    """Refusals raised on the `ChatRequest` name the field the Anthropic client sent instead."""
    try:
        yield
    except APIError as err:
        if err.param not in RENAMED:
            raise
        name = RENAMED[err.param]
        message = re.sub(rf"\b{re.escape(err.param)}\b", name, err.message)
        raise APIError(err.status, message, type=err.type, param=name, code=err.code) from None


def error_body(err: APIError) -> dict[str, Any]:
    """An error in Anthropic's shape (the message names the field)."""
    return {"type": "error", "error": {"type": ERROR_TYPES.get(err.type, err.type), "message": err.message}}


def stop_reason(record: GenerationRecord) -> str:
    return "max_tokens" if record.answer_end == "length" else "end_turn"


def message_usage(record: GenerationRecord, prompt_tokens: int, policy: BudgetPolicy, preset: str) -> dict[str, Any]:
    account = usage([record], prompt_tokens, policy, preset)
    return {"input_tokens": prompt_tokens, "output_tokens": account["completion_tokens"],
            "output_tokens_details": {"thinking_tokens": record.thinking_tokens}, "m1": account["m1"]}


def message_response(message_id: str, model: str, record: GenerationRecord, policy: BudgetPolicy,
                     prompt_tokens: int, preset: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if policy.thinking:
        content.append({"type": "thinking", "thinking": record.thinking, "signature": ""})
    content.append({"type": "text", "text": visible_answer(policy, record.reply)})
    return {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason(record), "stop_sequence": None,
            "usage": message_usage(record, prompt_tokens, policy, preset)}


Event = tuple[str, dict[str, Any]]  # (event name, data)


class AnthropicStream:
    """Anthropic's stream events for one reply, from `StreamShaper`'s chat deltas.

    message_start; with thinking, a thinking block (content_block_start, thinking_delta …,
    content_block_stop); a text block (content_block_start, text_delta …, content_block_stop);
    message_delta (stop_reason, usage); message_stop. The deltas add up to `message_response`.
    """

    def __init__(self, message_id: str, model: str, policy: BudgetPolicy, prompt_tokens: int):
        self.message_id, self.model, self.policy, self.prompt_tokens = message_id, model, policy, prompt_tokens
        self.index, self.open = -1, None

    def start(self) -> list[Event]:
        message = {"id": self.message_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self.prompt_tokens, "output_tokens": 0}}
        events: list[Event] = [("message_start", {"type": "message_start", "message": message})]
        if self.policy.thinking:
            events += self._open("thinking")
        return events

    def _open(self, kind: str) -> list[Event]:
        events = self._close()
        self.index, self.open = self.index + 1, kind
        block = {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" else {"type": "text",
                                                                                                 "text": ""}
        return events + [("content_block_start", {"type": "content_block_start", "index": self.index,
                                                  "content_block": block})]

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        self.open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _delta(self, delta: dict[str, str]) -> Event:
        return "content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta}

    def push(self, deltas: dict[str, str]) -> list[Event]:
        events: list[Event] = []
        # The shaper (ordered) sends all of the thinking before the first piece of the answer.
        if deltas.get("reasoning_content") and self.open == "thinking":
            events.append(self._delta({"type": "thinking_delta", "thinking": deltas["reasoning_content"]}))
        if deltas.get("content"):
            if self.open != "text":
                events += self._open("text")
            events.append(self._delta({"type": "text_delta", "text": deltas["content"]}))
        return events

    def finish(self, deltas: dict[str, str], record: GenerationRecord, preset: str) -> list[Event]:
        events = self.push(deltas)
        if self.open != "text":
            events += self._open("text")  # an empty answer still has its text block, as the reply does
        events += self._close()
        account = message_usage(record, self.prompt_tokens, self.policy, preset)
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": stop_reason(record), "stop_sequence": None},
                                         "usage": {key: account[key] for key in ("output_tokens",
                                                                                 "output_tokens_details", "m1")}}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    @staticmethod
    def probe(entry: dict[str, Any]) -> Event:
        return "m1_probe", {"type": "m1_probe", "probe": entry}

    @staticmethod
    def error(err: APIError) -> Event:
        return "error", error_body(err)
