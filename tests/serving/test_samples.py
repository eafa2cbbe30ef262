"""`n` choices, votes and answer logprobs through the official `openai` client against the session's
real `m1 serve` process (transformers): n sampled choices with their own seeds in one batch, choice
0 the same draw as n = 1, usage summed over choices, the vote in `usage.m1.vote`, streaming with
each chunk's choice `index`, and `logprobs` in OpenAI's shapes for the answer tokens only.

Budgets are tiny: the default model writes ~15 tokens a second per request on this CPU.
"""

from __future__ import annotations

import math

import pytest

from .conftest import MODEL
from .test_server import MESSAGES, check_usage

pytestmark = pytest.mark.slow

LETTERS = ["A", "B"]  # the options of MESSAGES' question
SMALL = {"budget_preset": "m1", "thinking_budget": 4}
# The model stops thinking at once: "Wait" until the minimum, so every choice thinks 6 tokens of its own.
THINKS = {"budget_preset": "m1", "thinking_budget": 6, "num_extensions": 6, "min_thinking_tokens": 6}


def m1_block(response) -> dict:
    return response.usage.model_extra["m1"]


def test_n_sampled_choices_have_their_own_seeds_and_vote(client) -> None:
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "temperature": 1.0, "seed": 7}
    response = client.chat.completions.create(n=4, extra_body=THINKS | {"vote": "majority", "choices": LETTERS},
                                              **kwargs)
    assert [choice.index for choice in response.choices] == [0, 1, 2, 3]
    block = m1_block(response)
    assert block["n"] == 4 and block["identical"] is False and len(block["choices"]) == 4
    assert response.usage.completion_tokens == sum(c["thinking_tokens"] + c["answer_tokens"] for c in block["choices"])
    assert response.usage.completion_tokens_details.reasoning_tokens == sum(c["thinking_tokens"]
                                                                            for c in block["choices"])
    thoughts = [choice.message.reasoning_content for choice in response.choices]
    assert len(set(thoughts)) > 1  # four draws, not one draw four times
    vote = block["vote"]
    assert vote["method"] == "majority" and len(vote["answers"]) == 4
    assert set(vote["votes"]) <= set(LETTERS) and vote["answer"] in (None, *LETTERS)
    if vote["answer"] is not None:
        assert vote["share"] == vote["votes"][vote["answer"]] / 4 == max(vote["votes"].values()) / 4
    # Choice 0 is the request's own draw: exactly what n = 1 gives with the same seed.
    single = client.chat.completions.create(extra_body=THINKS, **kwargs)
    assert single.choices[0].message.reasoning_content == thoughts[0]
    assert single.choices[0].message.content == response.choices[0].message.content
    assert m1_block(single) == block["choices"][0]


def test_greedy_choices_are_one_draw_and_stream_by_index(client) -> None:
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "extra_body": SMALL}
    whole = client.chat.completions.create(n=2, **kwargs)
    assert m1_block(whole)["identical"] is True
    assert whole.choices[0].message.content == whole.choices[1].message.content
    content, reasoning, finals, usage = {0: "", 1: ""}, {0: "", 1: ""}, {}, []
    for piece in client.chat.completions.create(n=2, stream=True, **kwargs):
        if not piece.choices:
            usage.append(piece.usage)
            continue
        choice = piece.choices[0]
        content[choice.index] += choice.delta.content or ""
        reasoning[choice.index] += (choice.delta.model_extra or {}).get("reasoning_content") or ""
        if choice.finish_reason:
            finals[choice.index] = choice.finish_reason
    for index in (0, 1):
        assert content[index] == whole.choices[index].message.content
        assert reasoning[index] == whole.choices[index].message.reasoning_content
        assert finals[index] == whole.choices[index].finish_reason
    # Several choices: their usage comes once, after the last choice, on a chunk without choices.
    assert len(usage) == 1 and usage[0].total_tokens == whole.usage.total_tokens
    assert usage[0].model_extra["m1"] == m1_block(whole)


def test_weighted_vote_weighs_by_the_letters_read(client) -> None:
    response = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=3, n=2, temperature=1.0, seed=3,
        extra_body=SMALL | {"vote": "weighted", "choices": LETTERS})
    vote = m1_block(response)["vote"]
    assert vote["method"] == "weighted" and len(vote["answers"]) == 2
    assert all(0.0 <= weight <= 2.0 for weight in vote["votes"].values())
    if vote["answer"] is not None and sum(vote["votes"].values()):
        assert vote["share"] == pytest.approx(vote["votes"][vote["answer"]] / sum(vote["votes"].values()), abs=1e-5)


def test_chat_logprobs_cover_the_answer_tokens_and_change_nothing(client) -> None:
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 5, "extra_body": {"budget_preset": "no-think"}}
    plain = client.chat.completions.create(**kwargs)
    response = client.chat.completions.create(logprobs=True, top_logprobs=3, **kwargs)
    assert response.choices[0].message.content == plain.choices[0].message.content
    assert plain.choices[0].logprobs is None
    content = response.choices[0].logprobs.content
    block = check_usage(response.usage)
    assert len(content) == block["answer_tokens"]
    assert "".join(entry.token for entry in content).lstrip() == response.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and bytes(entry.bytes) == entry.token.encode()
        assert len(entry.top_logprobs) == 3
        assert math.isclose(entry.top_logprobs[0].logprob, entry.logprob, abs_tol=1e-4)  # greedy: the best


def test_completion_logprobs_have_the_legacy_shape(client) -> None:
    response = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4, logprobs=2)
    choice = response.choices[0]
    logprobs = choice.logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == \
        response.usage.completion_tokens
    assert "".join(logprobs.tokens) == choice.text
    assert [choice.text[offset:offset + len(token)] for offset, token in zip(logprobs.text_offset, logprobs.tokens)] \
        == logprobs.tokens
    assert all(len(top) <= 2 and token in top for token, top in zip(logprobs.tokens, logprobs.top_logprobs))


def test_the_vote_and_n_are_refused_where_they_mean_nothing(http) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 2, "n": 2, "vote": "weighted"}
    error = http.post("/v1/chat/completions", json=body).json()["error"]
    assert error["param"] == "vote" and "choices" in error["message"]
