"""`m1 serve --backend vllm`: vLLM's async engine runs the same controller rounds, so on the
default model (greedy, float32) every reply must equal the transformers server's, text and usage,
through the OpenAI client and through the Anthropic one."""

from __future__ import annotations

import httpx
import pytest

from m1.serving.launch import ServerProcess

from .conftest import CONTEXT, MODEL
from .test_server import MESSAGES, check_usage, stream_chat

pytestmark = pytest.mark.slow

pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def vllm_server(default_model_dir, tmp_path_factory, effort_table_file):
    log = tmp_path_factory.mktemp("m1-serve-vllm") / "server.log"
    with ServerProcess(["--model", MODEL, "--backend", "vllm", "--max-context", str(CONTEXT),
                        "--effort-table", str(effort_table_file)], log_path=log,
                       env={"M1_API_KEY": "", "VLLM_CPU_KVCACHE_SPACE": "1"}) as server:
        yield server


@pytest.fixture(scope="module")
def vllm_client(vllm_server):
    from openai import OpenAI

    return OpenAI(base_url=vllm_server.base_url, api_key="unused", max_retries=0, timeout=300)


def test_vllm_replies_equal_the_transformers_server(vllm_client, client) -> None:
    # Few decode steps: vLLM's CPU build costs ~0.7 s a step on the 2-core machine, whatever the batch.
    # The model stops at once, takes the extension, then hits the budget: every path of the controller.
    extra = {"budget_preset": "m1", "thinking_budget": 6, "num_extensions": 2}
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "extra_body": extra}
    reference = client.chat.completions.create(**kwargs)
    reply = vllm_client.chat.completions.create(**kwargs)
    block = check_usage(reply.usage, extra["thinking_budget"])
    assert block["extensions_used"] == 1 and block["thinking_end"] == "budget_reached"
    assert reply.choices[0].message.reasoning_content == reference.choices[0].message.reasoning_content
    assert reply.choices[0].message.content == reference.choices[0].message.content
    assert reply.usage.model_extra["m1"] == reference.usage.model_extra["m1"]
    reasoning, content, finals, _ = stream_chat(vllm_client, **kwargs)
    assert (reasoning, content) == (reply.choices[0].message.reasoning_content, reply.choices[0].message.content)
    assert finals[0].usage.model_extra["m1"] == reply.usage.model_extra["m1"]


def test_vllm_anthropic_messages_equal_the_transformers_server(vllm_server, server) -> None:
    import anthropic

    # The model stops at once, takes the extension, then hits the budget, as above.
    kwargs = {"model": MODEL, "max_tokens": 10, "messages": MESSAGES, "thinking": {"type": "enabled", "budget_tokens": 6},
              "extra_body": {"budget_preset": "m1", "num_extensions": 2}}
    reference = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0).messages.create(**kwargs)
    messages = anthropic.Anthropic(base_url=vllm_server.url, api_key="unused", max_retries=0, timeout=300).messages
    reply = messages.create(**kwargs)
    assert [block.type for block in reply.content] == ["thinking", "text"]
    assert reply.usage.model_extra["m1"]["thinking_tokens"] <= 6 == reply.usage.model_extra["m1"]["thinking_budget"]
    assert reply.model_dump(exclude={"id"}) == reference.model_dump(exclude={"id"})
    with messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert [(b.type, getattr(b, "thinking", None), getattr(b, "text", None)) for b in final.content] == [
        (b.type, getattr(b, "thinking", None), getattr(b, "text", None)) for b in reply.content]
    assert (final.stop_reason, final.usage.output_tokens) == (reply.stop_reason, reply.usage.output_tokens)


def test_vllm_reasoning_effort_is_the_transformers_server_s(vllm_client, client) -> None:
    # Both servers read the same --effort-table: "medium" is 16 thinking tokens and one "Wait" round.
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "reasoning_effort": "medium"}
    reference = client.chat.completions.create(**kwargs)
    reply = vllm_client.chat.completions.create(**kwargs)
    block = check_usage(reply.usage, 16)
    assert block["num_extensions"] == 1 and block["budget_preset"] == "think-tags"
    assert reply.choices[0].message.reasoning_content == reference.choices[0].message.reasoning_content
    assert reply.usage.model_extra["m1"] == reference.usage.model_extra["m1"]


def test_vllm_completions_with_token_ids(vllm_client, client) -> None:
    ids = [504, 2988, 314]
    reply = vllm_client.completions.create(model=MODEL, prompt=ids, max_tokens=4, extra_body={"return_token_ids": True})
    reference = client.completions.create(model=MODEL, prompt=ids, max_tokens=4, extra_body={"return_token_ids": True})
    assert reply.choices[0].model_extra["token_ids"] == reference.choices[0].model_extra["token_ids"]
    assert reply.choices[0].text == reference.choices[0].text and reply.usage.prompt_tokens == 3


def test_vllm_client_leaving_mid_stream_aborts_its_round(vllm_server, vllm_client) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 8, "stream": True,
            "thinking_budget": 400, "num_extensions": 50, "min_thinking_tokens": 400}
    with httpx.stream("POST", f"{vllm_server.url}/v1/chat/completions", json=body, timeout=120) as response:
        lines = response.iter_lines()
        next(lines)
        next(lines)
    reply = vllm_client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4,
                                                extra_body={"thinking_budget": 4})
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert httpx.get(f"{vllm_server.url}/health").json()["running"] == 0


def test_vllm_n_choices_and_answer_logprobs_equal_the_transformers_server(vllm_client, client) -> None:
    """n choices start together on vLLM's engine; greedy, each equals the transformers server's,
    answer logprobs included (raw logprobs on both)."""
    import math

    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "n": 2, "logprobs": True, "top_logprobs": 2,
              "extra_body": {"budget_preset": "no-think", "vote": "majority"}}
    reference = client.chat.completions.create(**kwargs)
    reply = vllm_client.chat.completions.create(**kwargs)
    assert [c.message.content for c in reply.choices] == [c.message.content for c in reference.choices]
    assert reply.usage.model_extra["m1"]["vote"] == reference.usage.model_extra["m1"]["vote"]
    for choice, want in zip(reply.choices, reference.choices):
        assert [e.token for e in choice.logprobs.content] == [e.token for e in want.logprobs.content]
        for entry, other in zip(choice.logprobs.content, want.logprobs.content):
            assert math.isclose(entry.logprob, other.logprob, abs_tol=1e-3) and len(entry.top_logprobs) == 2
