"""Anthropic Messages requests → the chat request and budget policy, records → Anthropic replies and
stream events, checked against the anthropic SDK's own types; no model runs."""

from __future__ import annotations

import pytest

from m1.engine.controller import GenerationRecord
from m1.engine.policy import BudgetPolicy
from m1.engine.wire import anthropic as wire
from m1.engine.wire.errors import APIError
from m1.engine.wire.protocol import Limits, build_policy, chat_messages, parse
from m1.engine.wire.responses import usage

LIMITS = Limits(max_context=4096, max_thinking_tokens=2048)
BODY = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    from m1.engine.backends.base import load_tokenizer

    return load_tokenizer(str(default_model_dir))


def plan_of(tokenizer, **fields):
    request = parse(wire.MessagesRequest, {**BODY, **fields}, neutral_values=wire.NEUTRAL, ignored=wire.IGNORED)
    with wire.renamed_params():
        chat = wire.to_chat_request(request)
        return chat, build_policy(chat, LIMITS, tokenizer, chat=True)


def test_enabled_thinking_is_an_exact_budget_inside_max_tokens(tokenizer) -> None:
    chat, plan = plan_of(
        tokenizer, thinking={"type": "enabled", "budget_tokens": 16}, system=[{"type": "text", "text": "Be brief."}],
        stop_sequences=["###"], temperature=0.5, metadata={"user_id": "u"}, num_extensions=2, budget_preset="m1",
        messages=[{"role": "user", "content": "q"},
                  {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": ""},
                                                    {"type": "redacted_thinking", "data": "xyz"},
                                                    {"type": "text", "text": "B", "citations": None}]},
                  {"role": "user", "content": [{"type": "text", "text": "sure?"}]}])
    policy = plan.policy
    assert (chat.thinking_budget, chat.max_completion_tokens, chat.max_tokens) == (16, 64, None)
    assert plan.preset == "m1" and policy.thinking and policy.max_thinking_tokens == 16
    assert (policy.max_total_tokens, policy.num_extensions, policy.sampling.temperature) == (64, 2, 0.5)
    assert "###" in policy.answer_stops
    # The system prompt comes first; an earlier reply's thinking is not rendered.
    assert chat_messages(chat) == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"},
                                   {"role": "assistant", "content": "B"}, {"role": "user", "content": "sure?"}]


def test_prompt_caching_marks_are_accepted_and_change_nothing(tokenizer) -> None:
    mark = {"type": "ephemeral"}
    marked = plan_of(tokenizer, system=[{"type": "text", "text": "Be brief.", "cache_control": mark}],
                     messages=[{"role": "user", "content": [{"type": "text", "text": "q", "cache_control": mark}]}])
    plain = plan_of(tokenizer, system=[{"type": "text", "text": "Be brief."}],
                    messages=[{"role": "user", "content": [{"type": "text", "text": "q"}]}])
    assert chat_messages(marked[0]) == chat_messages(plain[0]) and marked[1] == plain[1]
    with pytest.raises(APIError) as caught:
        plan_of(tokenizer, system=[{"type": "text", "text": "x", "cache_control": {"type": "forever"}}])
    assert caught.value.status == 400 and "cache_control" in caught.value.param


@pytest.mark.parametrize("thinking", [None, {"type": "disabled"}])
def test_without_enabled_thinking_nothing_is_thought(tokenizer, thinking) -> None:
    chat, plan = plan_of(tokenizer, **({"thinking": thinking} if thinking else {}))
    assert plan.preset == "no-think" and not plan.policy.thinking and chat.thinking_budget is None


def test_budgets_below_anthropic_s_minimum_are_accepted(tokenizer) -> None:
    # Anthropic itself wants budget_tokens >= 1024; m1's budgets are exact, so 1 means 1.
    _chat, plan = plan_of(tokenizer, max_tokens=2, thinking={"type": "enabled", "budget_tokens": 1})
    assert plan.policy.max_thinking_tokens == 1


BAD = [
    ({"thinking": {"type": "enabled", "budget_tokens": 64}}, "thinking.budget_tokens", "less than max_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 0}}, "thinking.budget_tokens", "at least 1"),
    ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens", "required"),
    ({"thinking": {"type": "disabled", "budget_tokens": 8}}, "thinking.budget_tokens", "enabled"),
    ({"thinking": {"type": "adaptive"}}, "thinking.type", "enabled"),
    ({"max_tokens": 3000, "thinking": {"type": "enabled", "budget_tokens": 2500}}, "thinking.budget_tokens",
     "between 1 and 2048"),  # above the server's limit: build_policy's refusal, under the Anthropic name
    ({"max_tokens": 0}, "max_tokens", "at least 1"),
    ({"max_tokens": 9000}, "max_tokens", "max_tokens must be between"),
    ({"max_tokens": None}, "max_tokens", "required"),
    ({"budget_preset": "m1"}, "budget_preset", "thinking"),
    ({"budget_preset": "no-think", "thinking": {"type": "enabled", "budget_tokens": 8}}, "budget_preset", "enabled"),
    ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences", "stop_sequences takes at most"),
    ({"messages": []}, "messages", "empty"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role", "user"),
    ({"messages": [{"role": "user", "content": [{"type": "thinking", "thinking": "x"}]}]},
     "messages.0.content.0.signature", "required"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "data": "y"}]}]},
     "messages.0.content.0.data", "does not belong"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "messages.0.content.0.type",
     "text"),
    ({"system": [{"type": "text", "text": 5}]}, "system.0.text", ""),
    ({"top_k": 5}, "top_k", "not supported"),
    ({"n": 2}, "n", "unknown field"),
    ({"thinking_budget": 8}, "thinking_budget", "unknown field"),  # OpenAI-side fields are not Anthropic's
    ({"num_extensions": 2}, "num_extensions", "no effect"),  # no thinking to extend
]


@pytest.mark.parametrize(("changes", "param", "says"), BAD, ids=[p for _c, p, _s in BAD])
def test_bad_requests_name_the_anthropic_field(tokenizer, changes: dict, param: str, says: str) -> None:
    body = {key: value for key, value in {**BODY, **changes}.items() if value is not None}  # None: left out
    with pytest.raises(APIError) as caught:
        request = parse(wire.MessagesRequest, body, neutral_values=wire.NEUTRAL, ignored=wire.IGNORED)
        with wire.renamed_params():
            build_policy(wire.to_chat_request(request), LIMITS, tokenizer, chat=True)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert says in caught.value.message and param.split(".")[0] in caught.value.message
    error = wire.error_body(caught.value)
    assert error == {"type": "error", "error": {"type": "invalid_request_error", "message": caught.value.message}}


def test_errors_take_anthropic_s_types() -> None:
    assert wire.error_body(APIError(500, "boom", type="server_error"))["error"]["type"] == "api_error"
    assert wire.error_body(APIError(401, "key", type="authentication_error"))["error"]["type"] == "authentication_error"


def record_for(policy: BudgetPolicy, *, answer_end: str = "stop") -> GenerationRecord:
    return GenerationRecord(prompt="p", thinking="Let me think.\nWait, sure.", answer="B",
                            reply="<|im_start|>answer\nFinal Answer: B", thinking_tokens=9, answer_tokens=4,
                            inserted_tokens=3, extensions_used=1, thinking_end="extensions_spent",
                            answer_end=answer_end)


def case(thinking: bool, *, no_think_reply: str) -> tuple[BudgetPolicy, GenerationRecord]:
    """A finished record with thinking (m1 preset), or without it (no-think) answering `no_think_reply`."""
    policy = BudgetPolicy.from_preset("m1" if thinking else "no-think", max_thinking_tokens=16)
    record = record_for(policy)
    if not thinking:
        record.thinking, record.thinking_tokens, record.reply = "", 0, no_think_reply
    return policy, record


@pytest.mark.parametrize("thinking", [True, False])
def test_the_reply_is_an_anthropic_message(thinking: bool) -> None:
    from anthropic.types import Message

    policy, record = case(thinking, no_think_reply="B")
    body = wire.message_response("msg_1", "m", record, policy, 20, "m1")
    message = Message.model_validate(body)
    kinds = [block.type for block in message.content]
    assert kinds == (["thinking", "text"] if thinking else ["text"])
    if thinking:
        assert message.content[0].thinking == record.thinking and message.content[0].signature == ""
    assert message.content[-1].text == ("Final Answer: B" if thinking else "B")
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.usage.input_tokens == 20 and message.usage.output_tokens == record.thinking_tokens + 4
    assert message.usage.output_tokens_details.thinking_tokens == record.thinking_tokens
    assert message.usage.model_extra["m1"] == usage([record], 20, policy, "m1")["m1"]
    cut = wire.message_response("msg_2", "m", record_for(policy, answer_end="length"), policy, 20, "m1")
    assert cut["stop_reason"] == "max_tokens"


@pytest.mark.parametrize("thinking", [True, False])
def test_the_stream_is_anthropic_s_event_sequence_and_adds_up_to_the_reply(thinking: bool) -> None:
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    policy, record = case(thinking, no_think_reply="Final Answer: B")
    stream = wire.AnthropicStream("msg_1", "m", policy, 20)
    pieces = ([{"reasoning_content": "Let me think.\n"}, {"reasoning_content": "Wait, sure."}] if thinking else [])
    pieces += [{"content": "Final "}, {"content": "Answer:"}]
    events = stream.start() + [event for piece in pieces for event in stream.push(piece)]
    events += [stream.probe({"thinking_tokens": 4, "answer": "B"})]
    events += stream.finish({"content": " B"}, record, "m1")
    names = [name for name, _data in events]
    blocks = ["content_block_start", "content_block_delta", "content_block_delta", "content_block_stop"]
    expected = ["message_start", *(blocks if thinking else []), *blocks[:3], "m1_probe", "content_block_delta",
                "content_block_stop", "message_delta", "message_stop"]
    assert names == expected and all(data["type"] == name for name, data in events)
    adapter = TypeAdapter(RawMessageStreamEvent)
    snapshot = None
    for name, data in events:
        if name != "m1_probe":  # m1's own event; the SDK's stream skips what it does not know
            snapshot = accumulate_event(event=adapter.validate_python(data), current_snapshot=snapshot, json_bufs={})
    reply = wire.message_response("msg_1", "m", record, policy, 20, "m1")
    final = snapshot.model_dump(exclude_none=True)
    assert final["content"] == reply["content"] and final["stop_reason"] == reply["stop_reason"]
    assert final["usage"]["output_tokens"] == reply["usage"]["output_tokens"]
    assert events[-2][1]["usage"]["m1"] == reply["usage"]["m1"]
