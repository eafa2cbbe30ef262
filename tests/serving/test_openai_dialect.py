"""The thinking fields of other dialects through the official `openai` client against the session's
real `m1 serve` process: OpenAI's `reasoning_effort` (budgets from the server's --effort-table,
conftest's EFFORT_TABLE), vLLM's `thinking_token_budget`, llama.cpp's `thinking_budget_tokens`,
OpenRouter's `reasoning` object, and two fields that disagree (a 400 naming both, before any model
work). One request per behaviour, a few tokens each."""

from __future__ import annotations

import openai
import pytest

from .conftest import EFFORT_TABLE, MODEL
from .test_server import MESSAGES, check_usage, m1_usage, stream_chat

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tokenizer(default_model_dir):
    from m1.engine.backends.base import load_tokenizer

    return load_tokenizer(str(default_model_dir))


def test_reasoning_effort_gets_the_table_s_budget_and_exact_reasoning_tokens(client, tokenizer) -> None:
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, reasoning_effort="low")
    block = check_usage(response.usage, EFFORT_TABLE["low"])  # reasoning_tokens == m1's thinking_tokens
    reasoning = response.choices[0].message.reasoning_content
    # No "Wait" rounds (the level sets none): the reasoning is the generated thinking alone, and this
    # model's greedy text re-tokenizes to the tokens it was decoded from, so the text itself is counted
    # (it thinks past the level's 8 tokens: the budget is reached).
    assert block["num_extensions"] == 0 and block["extensions_used"] == 0
    reasoning_tokens = response.usage.completion_tokens_details.reasoning_tokens
    assert len(tokenizer.encode(reasoning, add_special_tokens=False)) == reasoning_tokens == EFFORT_TABLE["low"]


def test_an_effort_level_s_wait_rounds_come_from_the_table(client) -> None:
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, reasoning_effort="medium")
    block = check_usage(response.usage, EFFORT_TABLE["medium"]["thinking_budget"])
    assert block["num_extensions"] == EFFORT_TABLE["medium"]["num_extensions"]


def test_effort_none_does_not_think(client) -> None:
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, reasoning_effort="none")
    assert response.choices[0].message.reasoning_content is None
    assert response.usage.completion_tokens_details.reasoning_tokens == 0
    assert m1_usage(response)["budget_preset"] == "no-think"


@pytest.mark.parametrize("alias", ["thinking_token_budget", "thinking_budget_tokens"])
def test_vllm_and_llama_cpp_budgets_are_m1_s_thinking_budget(client, alias: str) -> None:
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4}
    reply = client.chat.completions.create(**kwargs, extra_body={alias: 32, "num_extensions": 1})
    same = client.chat.completions.create(**kwargs, extra_body={"thinking_budget": 32, "num_extensions": 1})
    check_usage(reply.usage, 32)
    assert reply.choices[0].message == same.choices[0].message and m1_usage(reply) == m1_usage(same)


def test_openrouter_exclude_hides_the_reasoning_but_counts_it(client) -> None:
    extra = {"reasoning": {"max_tokens": 6, "exclude": True}, "num_extensions": 20, "min_thinking_tokens": 6}
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "extra_body": extra}
    response = client.chat.completions.create(**kwargs)
    assert response.choices[0].message.reasoning_content is None
    block = check_usage(response.usage, 6)
    assert response.usage.completion_tokens_details.reasoning_tokens == block["thinking_tokens"] == 6
    reasoning, content, finals, _ = stream_chat(client, **kwargs)
    assert reasoning == "" and content == response.choices[0].message.content
    assert finals[0].usage.completion_tokens_details.reasoning_tokens == 6


def test_effort_with_max_completion_tokens_caps_thinking_and_answer_together(client) -> None:
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, reasoning_effort="high",
                                              max_completion_tokens=6,
                                              extra_body={"num_extensions": 20, "min_thinking_tokens": 6})
    block = check_usage(response.usage, EFFORT_TABLE["high"])
    assert response.usage.completion_tokens <= 6 and block["thinking_tokens"] == 6  # thinking spent the total
    assert response.choices[0].finish_reason == "length"


def test_completions_take_reasoning_effort_too(client) -> None:
    prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n"
    response = client.completions.create(model=MODEL, prompt=prompt, max_tokens=4,
                                         extra_body={"reasoning_effort": "minimal"})
    block = check_usage(response.usage, EFFORT_TABLE["minimal"])
    assert block["budget_preset"] == "think-tags"


@pytest.mark.parametrize(("effort", "extra", "names"), [
    ("low", {"thinking_budget": 8}, ("reasoning_effort", "thinking_budget")),  # 8 is low's budget: still refused
    (None, {"thinking_budget": 32, "thinking_token_budget": 64}, ("thinking_budget", "thinking_token_budget")),
    ("high", {"reasoning": {"effort": "low"}}, ("reasoning_effort", "reasoning.effort")),
])
def test_fields_that_disagree_are_a_bad_request_naming_both(client, effort, extra, names) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, extra_body=extra,
                                       **({"reasoning_effort": effort} if effort else {}))
    assert all(name in caught.value.message for name in names) and caught.value.param in names
    assert caught.value.code == "conflicting_parameters"


def test_an_effort_level_the_server_does_not_know_is_refused(client) -> None:
    # The SDK also types "max"; SPEC §8's levels end at xhigh.
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, reasoning_effort="max")
    assert caught.value.param == "reasoning_effort" and "xhigh" in caught.value.message
