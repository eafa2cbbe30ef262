"""API-key auth on a server of its own: /v1 routes need the key (`Authorization: Bearer` or
Anthropic's `x-api-key`), /health does not, and neither the key nor a wrong key ever reaches an
error body or the server's logs; a Host header that is not the server's (DNS rebinding) is a 400."""

from __future__ import annotations

import secrets

import httpx
import pytest

from m1.serving.launch import ServerProcess

from .conftest import MODEL

pytestmark = pytest.mark.slow

KEY = f"m1-test-{secrets.token_hex(16)}"
WRONG = f"m1-wrong-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def locked(default_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("m1-serve-auth") / "server.log"
    with ServerProcess(["--model", MODEL, "--api-key-env", "M1_TEST_SERVE_KEY", "--max-context", "512",
                        "--log-level", "debug"], log_path=log, env={"M1_TEST_SERVE_KEY": KEY}) as server:
        yield server


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "thinking_budget": 4}
MESSAGES = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
WRONG_HEADERS = ({}, {"Authorization": f"Bearer {WRONG}"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"},
                 {"x-api-key": WRONG}, {"x-api-key": f"Bearer {KEY}"}, {"X-Api-Key": ""})


def test_requests_need_the_key(locked) -> None:
    for headers in WRONG_HEADERS:
        for method, path, body in (("GET", "/v1/models", None), ("POST", "/v1/chat/completions", CHAT),
                                   ("POST", "/v1/messages", MESSAGES)):
            response = httpx.request(method, f"{locked.url}{path}", json=body, headers=headers, timeout=60)
            assert response.status_code == 401, (headers, path)
            assert response.json()["error"]["type"] == "authentication_error"
            assert KEY not in response.text
    assert httpx.get(f"{locked.url}/health").status_code == 200


def test_the_key_never_appears_in_an_error_body(locked) -> None:
    # Refusals of every kind, with the right key, a wrong one, or both: none echoes either key.
    attempts = [({"Authorization": f"Bearer {KEY}"}, "/v1/chat/completions", {**CHAT, "surprise": 1}),
                ({"x-api-key": KEY}, "/v1/messages", {**MESSAGES, "thinking": {"type": "enabled", "budget_tokens": 9}}),
                ({"x-api-key": KEY}, "/v1/nothing", {}),
                ({"Authorization": f"Bearer {KEY}", "x-api-key": WRONG}, "/v1/messages", {**MESSAGES, "model": "x"}),
                ({"Authorization": f"Bearer {WRONG}", "x-api-key": f"{KEY}x"}, "/v1/messages", MESSAGES)]
    for headers, path, body in attempts:
        response = httpx.post(f"{locked.url}{path}", json=body, headers=headers, timeout=60)
        assert 400 <= response.status_code < 500, (path, response.text)
        assert KEY not in response.text and WRONG not in response.text


def test_the_key_works_as_x_api_key_with_the_anthropic_client(locked) -> None:
    import anthropic

    response = httpx.post(f"{locked.url}/v1/messages", json=MESSAGES, headers={"x-api-key": KEY}, timeout=120)
    assert response.status_code == 200 and response.json()["type"] == "message"
    client = anthropic.Anthropic(base_url=locked.url, api_key=KEY, max_retries=0)
    assert client.messages.create(model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}]).content
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=locked.url, api_key=WRONG, max_retries=0).messages.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}])


def test_the_key_works_with_the_openai_client(locked) -> None:
    import openai
    from openai import OpenAI

    client = OpenAI(base_url=locked.base_url, api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list().data] == [MODEL]
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                                           extra_body={"thinking_budget": 4})
    assert reply.usage.model_extra["m1"]["thinking_tokens"] <= 4
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=locked.base_url, api_key=WRONG, max_retries=0).models.list()


def test_another_host_name_is_refused(locked) -> None:
    for path in ("/health", "/v1/models"):
        for host in ("evil.example", "evil.example:8000", "localhost.evil.example"):
            assert httpx.get(f"{locked.url}{path}", headers={"Host": host}, timeout=60).status_code == 400, host
        for host in ("localhost", "127.0.0.1:8000"):
            answer = httpx.get(f"{locked.url}{path}", headers={"Host": host, "x-api-key": KEY}, timeout=60)
            assert answer.status_code == 200, host


def test_keys_never_appear_in_the_logs(locked) -> None:
    # Runs after the requests above (module order); the log is written by the server process.
    log = locked.log()
    # The requests were logged, their headers were not.
    assert "Bearer" not in log and "x-api-key" not in log.lower() and "/v1/models" in log
    assert KEY not in log and WRONG not in log
    assert "M1_TEST_SERVE_KEY" in log  # the log says where the key comes from, never what it is

