"""n choices, votes and answer logprobs on the wire, without a model: request fields → `Plan`
(every refusal names its field), records → multi-choice bodies, `usage.m1` and vote blocks."""

from __future__ import annotations

import json

import pytest

from m1.engine.controller import GenerationRecord
from m1.engine.policy import BudgetPolicy, Sampling
from m1.engine.wire.errors import APIError
from m1.engine.wire.protocol import ChatRequest, CompletionRequest, Limits, build_policy, parse
from m1.engine.wire.responses import chat_response, completion_response, usage, vote_block

LIMITS = Limits(max_context=4096, max_thinking_tokens=4096, max_samples=8)


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    from m1.engine.backends.base import load_tokenizer

    return load_tokenizer(str(default_model_dir))


def chat(**fields) -> ChatRequest:
    return parse(ChatRequest, {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def completion(**fields) -> CompletionRequest:
    return parse(CompletionRequest, {"model": "m", "prompt": "hi", **fields})


def test_fields_map_onto_the_plan(tokenizer) -> None:
    plan = build_policy(chat(n=3, vote="weighted", choices=["A", "B"], logprobs=True, top_logprobs=2,
                             temperature=0.8), LIMITS, tokenizer, chat=True)
    assert (plan.n, plan.vote, plan.choices, plan.logprobs) == (3, "weighted", ("A", "B"), 2)
    assert plan.policy.answer_probability and plan.policy.answer_logprobs == 2
    plain = build_policy(chat(), LIMITS, tokenizer, chat=True)
    assert (plain.n, plain.vote, plain.logprobs) == (1, None, None)
    assert not plain.policy.answer_probability and plain.policy.answer_logprobs is None
    assert build_policy(chat(logprobs=True), LIMITS, tokenizer, chat=True).logprobs == 0
    assert build_policy(completion(logprobs=5), LIMITS, tokenizer, chat=False).policy.answer_logprobs == 5
    # early_exit.choices serve the vote as well; the same letters in both are fine.
    both = build_policy(chat(n=2, vote="majority", choices=["A", "B"], early_exit={"choices": ["A", "B"]}),
                        LIMITS, tokenizer, chat=True)
    assert both.choices == ("A", "B") and not both.policy.answer_probability


@pytest.mark.parametrize(("fields", "param", "is_chat"), [
    ({"n": 0}, "n", True), ({"n": 9}, "n", True), ({"n": 2.0}, "n", True),
    ({"vote": "majority"}, "vote", True),  # n = 1
    ({"n": 2, "vote": "plurality"}, "vote", True),
    ({"n": 2, "vote": "weighted"}, "vote", True),  # no letters
    ({"n": 2, "vote": "weighted", "choices": ["A", "B"], "budget_preset": "no-think"}, "vote", True),
    ({"n": 2, "vote": "weighted", "choices": ["A", "B"]}, "vote", False),  # a plain completion does not think
    ({"choices": ["A", "B"]}, "choices", True),  # without vote
    ({"n": 2, "vote": "majority", "choices": ["A"]}, "choices", True),
    ({"n": 2, "vote": "majority", "choices": ["A", "Vitamin C"]}, "choices", True),
    ({"n": 2, "vote": "majority", "choices": ["A", "B"], "early_exit": {"choices": ["A", "C"]}}, "choices", True),
    ({"top_logprobs": 2}, "top_logprobs", True),  # without logprobs: true
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", True),
    ({"logprobs": 2}, "logprobs", True),  # chat's is a boolean
    ({"logprobs": 21}, "logprobs", False),
    ({"logprobs": True}, "logprobs", False),  # completions' is a count
    ({"top_logprobs": 2}, "top_logprobs", False),  # not a completions field
    ({"best_of": 2}, "best_of", False),
])
def test_bad_sample_fields_name_the_field(tokenizer, fields, param, is_chat) -> None:
    with pytest.raises(APIError) as caught:
        request = chat(**fields) if is_chat else completion(**fields)
        build_policy(request, LIMITS, tokenizer, chat=is_chat)
    assert caught.value.status == 400 and caught.value.param == param, caught.value.message


def record(reply: str, *, thinking_tokens: int = 3, letters: dict | None = None, logprobs=None) -> GenerationRecord:
    return GenerationRecord(prompt="p", thinking="think", answer=reply, reply="</think>\n\n" + reply,
                            thinking_tokens=thinking_tokens, answer_tokens=2, thinking_end="natural_stop",
                            answer_end="stop", answer_read=None if letters is None else {"letters": letters},
                            answer_logprobs=logprobs)


POLICY = BudgetPolicy.from_preset("think-tags", max_thinking_tokens=64)


def test_one_choice_keeps_today_s_body_and_several_sum_their_usage() -> None:
    one = usage([record("B")], 10, POLICY, "think-tags")
    assert "n" not in one["m1"] and one["m1"]["thinking_tokens"] == 3
    records = [record("B"), record("C", thinking_tokens=5)]
    several = usage(records, 10, POLICY, "think-tags", vote={"answer": "B"})
    assert (several["prompt_tokens"], several["completion_tokens"], several["total_tokens"]) == (10, 12, 22)
    assert several["completion_tokens_details"]["reasoning_tokens"] == 8
    assert several["m1"]["n"] == 2 and several["m1"]["identical"]  # greedy: every choice is the same draw
    assert [block["thinking_tokens"] for block in several["m1"]["choices"]] == [3, 5]
    assert several["m1"]["choices"][0] == one["m1"] and several["m1"]["vote"] == {"answer": "B"}
    sampled = POLICY.model_copy(update={"sampling": Sampling(temperature=0.7)})
    assert not usage(records, 10, sampled, "think-tags")["m1"]["identical"]
    body = chat_response("id", "m", records, POLICY, 10, "think-tags")
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert [c["message"]["content"] for c in body["choices"]] == ["B", "C"]
    assert all(c["logprobs"] is None for c in body["choices"])


def test_votes_read_letters_or_normalised_answers() -> None:
    records = [record("The answer is \\boxed{B}"), record("C"), record("**B**"), record("no idea")]
    found = vote_block(records, POLICY, "majority", ("A", "B", "C"))
    assert (found["answer"], found["share"], found["votes"]) == ("B", 0.5, {"B": 2, "C": 1})
    assert found["answers"] == ["B", "C", "B", None]
    weighted = [record("B", letters={"B": 0.3, "C": 0.7}), record("C", letters={"B": 0.1, "C": 0.9}),
                record("B", letters={"B": 0.2, "C": 0.8})]
    found = vote_block(weighted, POLICY, "weighted", ("B", "C"))
    assert found["answer"] == "C" and found["votes"] == {"B": 0.5, "C": 0.9}
    assert found["share"] == pytest.approx(0.9 / 1.4, abs=1e-6)
    free = [record(" Scurvy."), record("scurvy"), record("Rickets")]
    found = vote_block(free, POLICY, "majority", None)
    assert (found["answer"], found["votes"]) == ("scurvy", {"scurvy": 2, "rickets": 1})
    json.dumps(found)


def test_logprobs_blocks_have_openai_s_shapes() -> None:
    entries = [{"token": "B", "logprob": -0.1, "top": [["B", -0.1], ["C", -2.5]]},
               {"token": "é", "logprob": -0.5, "top": [["é", -0.5], ["e", -1.5]]}]
    rec = record("Bé", logprobs=entries)
    content = chat_response("id", "m", [rec], POLICY, 10, "think-tags", logprobs=1)["choices"][0]["logprobs"]
    assert content["content"][1] == {"token": "é", "logprob": -0.5, "bytes": [195, 169],
                                     "top_logprobs": [{"token": "é", "logprob": -0.5, "bytes": [195, 169]}]}
    legacy = completion_response("id", "m", [rec], POLICY, 10, "think-tags", with_ids=False,
                                 logprobs=2)["choices"][0]
    block = legacy["logprobs"]
    assert block["tokens"] == ["B", "é"] and block["token_logprobs"] == [-0.1, -0.5]
    assert block["top_logprobs"][0] == {"B": -0.1, "C": -2.5}
    assert [legacy["text"][i:i + 1] for i in block["text_offset"]] == ["B", "é"]
