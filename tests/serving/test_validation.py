"""Bad requests get a 4xx with an OpenAI-shaped error naming the field, and never reach the model
or take the server down."""

from __future__ import annotations

import pytest

from .conftest import CONTEXT, MODEL

pytestmark = pytest.mark.slow

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "thinking_budget": 4}
COMPLETION = {"model": MODEL, "prompt": "hi", "max_tokens": 4}

BAD = [
    # (endpoint, body changes, param, status)
    ("chat", {"model": None}, "model", 400),
    ("chat", {"messages": None}, "messages", 400),
    ("chat", {"messages": []}, "messages", 400),
    ("chat", {"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role", 400),
    ("chat", {"messages": [{"role": "user", "content": 5}]}, "messages.0.content", 400),
    ("chat", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages.0.content.0.type", 400),
    ("chat", {"surprise": 1}, "surprise", 400),
    ("chat", {"budget_preset": "deep"}, "budget_preset", 400),
    ("chat", {"thinking_budget": 0}, "thinking_budget", 400),
    ("chat", {"thinking_budget": -3}, "thinking_budget", 400),
    ("chat", {"thinking_budget": 10**9}, "thinking_budget", 400),
    ("chat", {"thinking_budget": "12"}, "thinking_budget", 400),
    ("chat", {"thinking_budget": 12.5}, "thinking_budget", 400),
    ("chat", {"num_extensions": -1}, "num_extensions", 400),
    ("chat", {"min_thinking_tokens": 5}, "min_thinking_tokens", 400),  # above the budget of 4
    ("chat", {"extension_str": ""}, "extension_str", 400),
    ("chat", {"max_tokens": 0}, "max_tokens", 400),
    ("chat", {"max_tokens": -1}, "max_tokens", 400),
    ("chat", {"temperature": 3}, "temperature", 400),
    ("chat", {"top_p": 0}, "top_p", 400),
    ("chat", {"seed": -1}, "seed", 400),
    ("chat", {"stop": ["a", "b", "c", "d", "e"]}, "stop", 400),
    ("chat", {"n": 17}, "n", 400),  # above the server's limit (16)
    ("chat", {"vote": "majority"}, "vote", 400),  # a vote needs n > 1
    ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs", 400),
    ("chat", {"tools": [{"type": "function"}]}, "tools", 400),
    ("chat", {"stream": "yes"}, "stream", 400),
    ("chat", {"budget_preset": "no-think", "thinking_budget": 8}, "thinking_budget", 400),
    ("chat", {"model": "gpt-4o"}, "model", 404),
    ("chat", {"early_exit": {"threshold": 0}}, "early_exit.threshold", 400),
    ("chat", {"early_exit": {"every": 0}}, "early_exit.every", 400),
    ("chat", {"early_exit": {"min_tokens": 5}}, "early_exit.min_tokens", 400),  # above the budget of 4
    ("chat", {"early_exit": {"choices": ["A", "Vitamin C"]}}, "early_exit.choices", 400),
    ("chat", {"early_exit": {}, "budget_preset": "no-think", "thinking_budget": None}, "early_exit", 400),
    ("chat", {"thinking_budget": "unlimited"}, "thinking_budget", 400),
    ("chat", {"stream_probes": True, "thinking_budget": "auto"}, "stream_probes", 400),  # not streaming
    ("completion", {"early_exit": {"probe_tokens": 5}}, "early_exit.probe_tokens", 400),  # above max_tokens 4
    ("completion", {"prompt": ""}, "prompt", 400),
    ("completion", {"prompt": ["a", "b"]}, "prompt", 400),
    ("completion", {"prompt": [1, 10**7]}, "prompt", 400),
    ("completion", {"prompt": "word " * 1100}, "prompt", 400),  # longer than the server's 1,024-token context
    ("completion", {"max_tokens": 1025}, "max_tokens", 400),
    ("completion", {"prompt": "word " * 600, "max_tokens": 500}, "prompt", 400),  # fits, but not with its answer
    ("completion", {"return_token_ids": True, "stream": True}, "return_token_ids", 400),
    ("completion", {"echo": True}, "echo", 400),
    ("completion", {"stop_token_ids": [-1]}, "stop_token_ids", 400),
    ("completion", {"skip_special_tokens": True}, "skip_special_tokens", 400),
]


@pytest.mark.parametrize(("endpoint", "changes", "param", "status"), BAD,
                         ids=[f"{e}-{'-'.join(c)}" for e, c, _p, _s in BAD])
def test_bad_request_names_the_field(http, endpoint: str, changes: dict, param: str, status: int) -> None:
    body = {**(CHAT if endpoint == "chat" else COMPLETION), **changes}
    body = {k: v for k, v in body.items() if v is not None}
    response = http.post("/v1/chat/completions" if endpoint == "chat" else "/v1/completions", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


def test_the_openai_client_sees_the_error(client) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"thinking_budget": 4, "min_thinking_tokens": 9})
    assert caught.value.param == "min_thinking_tokens" and "min_thinking_tokens" in caught.value.message


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_malformed_bodies(http, raw: bytes) -> None:
    response = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_oversized_body_is_413(http) -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "x" * 300_000}]}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 413 and response.json()["error"]["type"] == "request_too_large"


def test_oversized_chunked_body_is_413(http) -> None:
    def pieces():
        yield b'{"model": "smollm2-135m", "prompt": "'
        for _ in range(30):
            yield b"y" * 10_000
        yield b'"}'

    response = http.post("/v1/completions", content=pieces(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_unknown_routes_and_methods_are_json_errors(http) -> None:
    assert http.get("/v1/nothing").json()["error"]["type"] == "not_found_error"
    assert http.get("/v1/chat/completions").status_code == 405


def test_without_max_tokens_the_answer_budget_shrinks_to_fit(http) -> None:
    # The default answer budget (1,024) does not fit beside any prompt in a 1,024-token context.
    body = {"model": MODEL, "prompt": "The capital of France is", "stop": ["."]}
    response = http.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert usage["prompt_tokens"] + usage["m1"]["max_answer_tokens"] == CONTEXT


def test_server_is_still_healthy(http) -> None:
    assert http.get("/health").json()["status"] == "ok"
    response = http.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200
