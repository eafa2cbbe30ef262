"""`POST /v1/messages` through the official `anthropic` client, unchanged but for `base_url`, against
the shared real server: thinking enabled (an exact budget) and disabled, a system prompt, stop
sequences, streaming with Anthropic's event sequence, and errors the client raises as its own.

Decoding is greedy, so an Anthropic reply equals the OpenAI chat reply to the same request, and a
stream adds up to the reply.
"""

from __future__ import annotations

import pytest

from .conftest import MODEL
from .test_server import QUESTION

pytestmark = pytest.mark.slow

SYSTEM = "Answer with one letter."
MESSAGES = [{"role": "user", "content": QUESTION}]
# The minimum equals the budget: SmolLM2 stops at once, so it is extended until the budget is spent.
BUDGET = 8
THINKING = {"model": MODEL, "max_tokens": 24, "system": SYSTEM, "messages": MESSAGES,
            "thinking": {"type": "enabled", "budget_tokens": BUDGET},
            "extra_body": {"num_extensions": 20, "min_thinking_tokens": BUDGET}}
PLAIN = {"model": MODEL, "max_tokens": 12, "system": SYSTEM, "messages": MESSAGES, "thinking": {"type": "disabled"}}


@pytest.fixture(scope="module")
def messages(server):
    import anthropic

    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120).messages


@pytest.fixture(scope="module")
def thinking_reply(messages):
    return messages.create(**THINKING)


def test_thinking_is_a_thinking_block_within_an_exact_budget(thinking_reply, client) -> None:
    reply = thinking_reply
    assert [block.type for block in reply.content] == ["thinking", "text"]
    assert reply.id.startswith("msg_") and reply.role == "assistant" and reply.model == MODEL
    m1 = reply.usage.model_extra["m1"]
    assert m1["thinking_tokens"] == m1["thinking_budget"] == BUDGET and m1["thinking_end"] == "budget_reached"
    assert reply.usage.output_tokens == m1["thinking_tokens"] + m1["answer_tokens"] <= THINKING["max_tokens"]
    assert reply.usage.output_tokens_details.thinking_tokens == BUDGET
    assert reply.stop_reason == ("max_tokens" if m1["answer_end"] == "length" else "end_turn")
    assert reply.content[1].text.startswith("Final Answer:")
    # The same request in OpenAI's words: the same engine call, the same text.
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": SYSTEM}, *MESSAGES], max_completion_tokens=24,
        extra_body={"thinking_budget": BUDGET, "num_extensions": 20, "min_thinking_tokens": BUDGET})
    assert reply.content[0].thinking == chat.choices[0].message.reasoning_content
    assert reply.content[1].text == chat.choices[0].message.content
    assert reply.usage.input_tokens == chat.usage.prompt_tokens and m1 == chat.usage.model_extra["m1"]


def test_a_stream_is_anthropic_s_event_sequence_and_adds_up_to_the_reply(messages, thinking_reply) -> None:
    raw = ("message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
           "message_stop")
    order = []
    with messages.stream(**THINKING) as stream:
        for event in stream:
            if event.type in raw and (not order or order[-1] != event.type):
                order.append(event.type)
        final = stream.get_final_message()
    block = ["content_block_start", "content_block_delta", "content_block_stop"]
    assert order == ["message_start", *block, *block, "message_delta", "message_stop"]
    fields = {"type", "thinking", "signature", "text"}
    assert [b.model_dump(include=fields) for b in final.content] == [
        b.model_dump(include=fields) for b in thinking_reply.content]
    assert (final.stop_reason, final.stop_sequence) == (thinking_reply.stop_reason, thinking_reply.stop_sequence)
    assert final.usage.output_tokens == thinking_reply.usage.output_tokens
    assert final.usage.input_tokens == thinking_reply.usage.input_tokens


def test_disabled_thinking_and_stop_sequences(messages) -> None:
    reply = messages.create(**PLAIN)
    assert [block.type for block in reply.content] == ["text"]
    m1 = reply.usage.model_extra["m1"]
    assert m1["budget_preset"] == "no-think" and m1["thinking_tokens"] == 0 and m1["thinking_end"] == "no_thinking"
    text = reply.content[0].text
    assert reply.usage.output_tokens == m1["answer_tokens"] <= PLAIN["max_tokens"]
    # A stop sequence taken from the answer itself cuts it there, whatever this model says.
    words = text.split()
    assert len(words) >= 2, text
    stop = " " + words[1]
    cut = messages.create(**PLAIN, stop_sequences=[stop])
    assert text.startswith(cut.content[0].text) and len(cut.content[0].text) <= text.index(stop)
    assert cut.stop_reason == "end_turn" and cut.usage.output_tokens < reply.usage.output_tokens


def test_errors_are_the_anthropic_client_s_own(messages) -> None:
    import anthropic

    with pytest.raises(anthropic.BadRequestError) as caught:
        messages.create(**{**THINKING, "max_tokens": BUDGET})
    assert "thinking.budget_tokens" in caught.value.message and "max_tokens" in caught.value.message
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError) as caught:
        messages.create(**PLAIN, extra_body={"reasoning_effort": "high"})
    assert "reasoning_effort" in caught.value.message
    with pytest.raises(anthropic.NotFoundError):
        messages.create(**{**PLAIN, "model": "claude-sonnet-4-5"})
