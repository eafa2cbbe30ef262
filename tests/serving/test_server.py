"""`m1 serve` through the official `openai` client against a real server process: both endpoints,
with and without streaming, budgets honoured and accounted for, validation, concurrency.

The default model (SmolLM2-135M) stops thinking at once, so every extension it is given is used:
that makes `extensions_used == num_extensions` a reliable check. Decoding is greedy, so a stream
must add up to exactly the non-streaming reply.
"""

from __future__ import annotations

import threading

import pytest

from m1.engine.policy import BudgetPolicy
from m1.engine.prompt import render_prompt

from .conftest import CONTEXT, MODEL

pytestmark = pytest.mark.slow

QUESTION = ("Which vitamin deficiency causes scurvy?\nA. Vitamin A\nB. Vitamin C\n"
            "Return your final response within \\boxed{}.")
MESSAGES = [{"role": "user", "content": QUESTION}]


def m1_usage(response) -> dict:
    return response.usage.model_extra["m1"]


def check_usage(usage, budget: int | None = None) -> dict:
    block = usage.model_extra["m1"]
    assert usage.completion_tokens == block["thinking_tokens"] + block["answer_tokens"]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details.reasoning_tokens == block["thinking_tokens"]
    assert block["answer_tokens"] <= block["max_answer_tokens"]
    if budget is not None:
        assert block["thinking_tokens"] <= budget == block["thinking_budget"]
    return block


def test_health_and_models(client, http) -> None:
    assert http.get("/health").json()["status"] == "ok"
    assert [m.id for m in client.models.list().data] == [MODEL]


def test_chat_reasoning_and_answer(client) -> None:
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=24,
                                              extra_body={"thinking_budget": 32})
    message = response.choices[0].message
    assert isinstance(message.reasoning_content, str) and isinstance(message.content, str)
    assert "<|im_start|>" not in message.content and "<|im_start|>" not in message.reasoning_content
    block = check_usage(response.usage, 32)
    # No budget_preset asked: the server's default, the served model's own (think-tags for smollm2-135m).
    assert block["budget_preset"] == "think-tags" and block["thinking_end"] in ("natural_stop", "budget_reached")
    assert "<think>" not in message.content and "</think>" not in message.content
    assert response.choices[0].finish_reason == ("length" if block["answer_end"] == "length" else "stop")


def test_extensions_are_all_used_by_a_model_that_stops_at_once(client) -> None:
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8,
                                              extra_body={"thinking_budget": 64, "num_extensions": 2})
    block = check_usage(response.usage, 64)
    assert block["extensions_used"] == 2 and block["thinking_end"] == "extensions_spent"
    assert response.choices[0].message.reasoning_content.count("Wait") >= 2
    assert block["inserted_tokens"] > 0


@pytest.mark.parametrize("budget", [1, 3, 8])
def test_budget_is_a_hard_cap_and_a_hit_answers_with_final_answer(client, budget: int) -> None:
    # A minimum above what one round gives keeps extending until the budget is hit.
    response = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8,
        extra_body={"thinking_budget": budget, "num_extensions": 20, "min_thinking_tokens": budget})
    block = check_usage(response.usage, budget)
    assert block["thinking_tokens"] == budget and block["thinking_end"] == "budget_reached"
    assert response.choices[0].message.content.startswith("Final Answer:")


def test_no_think_preset_has_no_reasoning(client) -> None:
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16,
                                              extra_body={"budget_preset": "no-think"})
    assert response.choices[0].message.reasoning_content is None
    block = check_usage(response.usage)
    assert block["thinking_tokens"] == 0 and block["thinking_end"] == "no_thinking" and block["thinking_budget"] == 0


def stream_chat(client, **kwargs):
    reasoning, content, finals, usage_only = "", "", [], []
    for piece in client.chat.completions.create(stream=True, **kwargs):
        if not piece.choices:
            usage_only.append(piece.usage)
            continue
        delta = piece.choices[0].delta
        reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
        content += delta.content or ""
        if piece.choices[0].finish_reason:
            finals.append(piece)
    return reasoning, content, finals, usage_only


@pytest.mark.parametrize("extra", [{"thinking_budget": 64, "num_extensions": 2},
                                   {"thinking_budget": 6, "num_extensions": 9, "min_thinking_tokens": 6},
                                   {"budget_preset": "think-tags", "thinking_budget": 24, "num_extensions": 1},
                                   {"budget_preset": "no-think", "stop": ["Vitamin C", "scurvy"]}])
def test_chat_stream_adds_up_to_the_reply(client, extra: dict) -> None:
    kwargs = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16, "extra_body": extra}
    whole = client.chat.completions.create(**kwargs)
    reasoning, content, finals, usage_only = stream_chat(client, stream_options={"include_usage": True}, **kwargs)
    assert reasoning == (whole.choices[0].message.reasoning_content or "")  # null with no-think
    assert content == whole.choices[0].message.content
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == whole.choices[0].finish_reason
    assert m1_usage(finals[0]) == m1_usage(whole)
    assert len(usage_only) == 1 and usage_only[0].total_tokens == whole.usage.total_tokens


def test_completions_plain_by_default(client) -> None:
    response = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6)
    block = check_usage(response.usage)
    assert block["budget_preset"] == "none" and block["thinking_tokens"] == 0 and block["answer_tokens"] <= 6
    streamed = "".join(p.choices[0].text for p in client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=6, stream=True) if p.choices)
    assert streamed == response.choices[0].text


def test_completions_with_budget_return_thinking_and_answer_as_generated(client) -> None:
    from transformers import AutoTokenizer

    from m1.engine.default_model import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MODEL))
    policy = BudgetPolicy.from_preset("m1")
    prompt = render_prompt(tokenizer, "Which vitamin deficiency causes scurvy?", {"A": "Vitamin A", "B": "Vitamin C"},
                           policy)
    extra = {"budget_preset": "m1", "thinking_budget": 32, "num_extensions": 1}  # the prompt's markers
    response = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12, extra_body=extra)
    text = response.choices[0].text
    block = check_usage(response.usage, 32)
    assert block["extensions_used"] == 1 and "<|im_start|>answer" in text and text.count("Wait") >= 1
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt.split(
        "<|im_start|>user\n")[1].split("<|im_end|>")[0]}], max_tokens=12, extra_body=extra)
    assert text.startswith(chat.choices[0].message.reasoning_content)
    assert text.endswith(chat.choices[0].message.content)
    streamed = "".join(p.choices[0].text for p in client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=12, extra_body=extra, stream=True) if p.choices)
    assert streamed == text


def test_token_id_prompts_are_not_retokenised(client, server) -> None:
    from transformers import AutoTokenizer

    from m1.engine.default_model import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(MODEL))
    # "W" + "ait" as two tokens: decoding and re-encoding would give the single token "Wait".
    ids = tokenizer.encode("The word is ", add_special_tokens=False) + tokenizer.encode("W", add_special_tokens=False) \
        + tokenizer.encode("ait", add_special_tokens=False)
    assert len(tokenizer.encode(tokenizer.decode(ids), add_special_tokens=False)) < len(ids)
    response = client.completions.create(model=MODEL, prompt=ids, max_tokens=5, extra_body={"return_token_ids": True})
    assert response.usage.prompt_tokens == len(ids)
    returned = response.choices[0].model_extra["token_ids"]
    assert len(returned) == response.usage.completion_tokens
    assert tokenizer.decode(returned) == response.choices[0].text


def test_openai_backend_through_m1_serve_matches_the_server_own_budgeting(client, server, default_model_dir) -> None:
    """m1's OpenAI backend runs budget forcing client-side over plain completions; the server runs it
    itself. On one server, greedy, both must give the same thinking and answer."""
    openai_backend = pytest.importorskip("m1.engine.backends.openai")
    backend = openai_backend.OpenAIBackend(MODEL, base_url=server.base_url, tokenizer=str(default_model_dir),
                                           max_context=CONTEXT, concurrency=2)
    policy = BudgetPolicy.from_preset("m1", max_thinking_tokens=24, num_extensions=2, max_answer_tokens=12)
    prompt = render_prompt(backend.tokenizer, "Which vitamin deficiency causes scurvy?",
                           {"A": "Vitamin A", "B": "Vitamin C"}, policy)
    record = backend.generate([prompt], policy)[0]
    served = client.completions.create(model=MODEL, prompt=prompt, max_tokens=12,
                                       extra_body={"budget_preset": "m1", "thinking_budget": 24, "num_extensions": 2})
    block = m1_usage(served)
    assert served.choices[0].text == record.thinking + record.reply
    assert (block["thinking_tokens"], block["answer_tokens"], block["extensions_used"], block["inserted_tokens"]) == (
        record.thinking_tokens, record.answer_tokens, record.extensions_used, record.inserted_tokens)


def test_concurrent_requests_all_succeed_and_are_batched(server) -> None:
    from openai import OpenAI

    results: list[object] = []

    def ask(i: int) -> None:
        client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
        try:
            # After the m1 markers this model stops thinking at once, so every extension is used.
            extra = {"budget_preset": "m1", "thinking_budget": 8 + i, "num_extensions": i % 3}
            if i % 2:
                r = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=6, extra_body=extra)
                results.append(m1_usage(r)["extensions_used"] == i % 3)
            else:
                r = client.completions.create(model=MODEL, prompt=f"Count to {i}:", max_tokens=6)
                results.append(r.usage.completion_tokens <= 6)
        except Exception as err:  # noqa: BLE001 - collected and reported below
            results.append(err)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert results == [True] * 8
    import httpx

    assert httpx.get(f"{server.url}/health").json()["largest_batch"] > 1


def test_a_client_leaving_mid_stream_does_not_hurt_the_server(server, client) -> None:
    import httpx

    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 8, "stream": True,
            "thinking_budget": 48, "num_extensions": 20, "min_thinking_tokens": 48}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    # Gone after one line; the next request is answered and the server is healthy.
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4,
                                           extra_body={"thinking_budget": 4})
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert httpx.get(f"{server.url}/health").json()["status"] == "ok"
    assert "client left mid-stream" in server.log()


@pytest.mark.parametrize("temperature", [5e-324, 1e-45, 1e-6])
def test_a_vanishing_temperature_decodes_greedily(client, temperature: float) -> None:
    """1e-45 once divided the logits into inf: a 500 for this request and for its batch mates."""
    kwargs = {"model": MODEL, "prompt": "The capital of France is", "max_tokens": 6}
    greedy = client.completions.create(**kwargs, temperature=0)
    tiny = client.completions.create(**kwargs, temperature=temperature)
    assert tiny.choices[0].text == greedy.choices[0].text
