"""The curation chat client against a real HTTP server that fails on purpose (`fault_server.py`):
retries, the disk cache, truncation, parameter names, fatal errors and the API key's secrecy."""

from __future__ import annotations

import threading

import pytest

from m1.engine.client import (
    ChatClient,
    ClientConfig,
    ClientFatal,
    RateLimiter,
    RequestFailed,
    parse_completion,
    request_key,
)

from .fault_server import FaultServer

SECRET = "sk-test-3f9c1d7e0b2a4c6e8f1a3b5d7c9e0f12"


def fast_config(server: FaultServer, **fields) -> ClientConfig:
    """Tiny backoffs and timeouts, so that every fault costs milliseconds (Retry-After aside)."""
    return ClientConfig(model="teacher-x", base_url=server.base_url, api_key_env="M1_TEST_API_KEY",
                        max_tokens=64, timeout=0.5, max_retries=3, backoff_initial=0.01, backoff_max=0.05,
                        **fields)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("M1_TEST_API_KEY", SECRET)


@pytest.mark.parametrize("plan", [["429", "ok"], ["500", "500", "ok"], ["timeout", "ok"], ["malformed", "ok"],
                                  ["no_choices", "ok"]])
def test_transient_faults_are_retried_until_a_good_reply(tmp_path, plan):
    with FaultServer(schedule=lambda body: plan, timeout_sleep=1.0) as server:
        client = ChatClient(fast_config(server), tmp_path / "cache")
        reply = client.chat(ask("Which organ makes insulin?"))
    assert reply.content.endswith("}") and reply.reasoning and not reply.cached
    stats = client.stats()
    assert stats["retries"] == len(plan) - 1 and stats["replies"] == 1 and stats["requests"] == len(plan)
    assert sum(stats["errors"].values()) == len(plan) - 1
    assert list(server.paid.values()) == [1]


def test_a_request_that_never_succeeds_fails_with_a_readable_reason(tmp_path):
    with FaultServer(schedule=lambda body: ["500"] * 10) as server:
        client = ChatClient(fast_config(server), tmp_path / "cache")
        with pytest.raises(RequestFailed) as failure:
            client.chat(ask("q"))
    assert failure.value.reason == "api error after 3 retries: 500"
    assert "status 500 on purpose" in failure.value.detail
    assert not list((tmp_path / "cache").rglob("*.json")), "failures must not be cached"


def test_a_refused_request_fails_at_once_and_a_bad_key_stops_the_run(tmp_path):
    with FaultServer(schedule=lambda body: ["400"] if "refuse" in body["messages"][0]["content"] else ["401"]) as server:
        client = ChatClient(fast_config(server), tmp_path / "cache")
        with pytest.raises(RequestFailed, match="api refused the request: 400"):
            client.chat(ask("refuse me"))
        with pytest.raises(ClientFatal, match="M1_TEST_API_KEY"):
            client.chat(ask("anything"))
    assert client.stats()["requests"] == 2  # neither was retried


def test_a_run_of_failures_stops_the_run(tmp_path):
    with FaultServer(schedule=lambda body: ["400"]) as server:
        client = ChatClient(fast_config(server, max_consecutive_failures=3), tmp_path / "cache")
        for n in range(2):
            with pytest.raises(RequestFailed):
                client.chat(ask(f"q{n}"))
        with pytest.raises(ClientFatal, match="3 requests in a row failed"):
            client.chat(ask("q2"))


def test_replies_are_cached_by_request_and_never_paid_twice(tmp_path):
    with FaultServer(schedule=lambda body: ["ok"], delay=0.2) as server:
        client = ChatClient(fast_config(server, price_input_per_million=1.0, price_output_per_million=2.0),
                            tmp_path / "cache")
        # Eight threads ask the same question at once: one pays, the others wait and read the cache.
        results = []
        threads = [threading.Thread(target=lambda: results.append(client.chat(ask("same")))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        again = ChatClient(fast_config(server), tmp_path / "cache").chat(ask("same"))
        other = client.chat(ask("different"))
    assert sum(server.paid.values()) == 2 and set(server.paid.values()) == {1}
    assert sorted(r.cached for r in results) == [False] + [True] * 7
    assert again.cached and again.content == results[0].content
    stats = client.stats()
    assert stats["cache_hits"] == 7 and stats["replies"] == 2
    usage = other.usage
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0 and usage["reasoning_tokens"] > 0
    expected = sum(r.usage["prompt_tokens"] * 1 + r.usage["completion_tokens"] * 2 for r in (results[0], other)) / 1e6
    assert stats["cost"] == pytest.approx(expected, abs=1e-6)
    assert stats["cost_saved_by_cache"] == pytest.approx(7 * results[0].cost, abs=1e-6)


def test_no_more_requests_are_in_flight_than_the_limit(tmp_path):
    with FaultServer(schedule=lambda body: ["ok"], delay=0.1) as server:
        client = ChatClient(fast_config(server, max_concurrency=2), tmp_path / "cache")
        replies = client.chat_many([ask(f"q{i}") for i in range(8)], workers=8)
    assert all(not isinstance(reply, Exception) for reply in replies)
    assert 1 <= server.max_in_flight <= 2


def test_sampling_parameters_go_under_the_names_the_api_reads(tmp_path):
    with FaultServer(schedule=lambda body: ["ok"]) as server:
        config = fast_config(server, temperature=0.6, top_p=0.95, max_tokens_field="max_completion_tokens",
                             extra_body={"thinking_budget": 256, "min_thinking_tokens": 32})
        ChatClient(config, tmp_path / "cache").chat(ask("q"))
    body = server.bodies[0]
    assert body["temperature"] == 0.6 and body["top_p"] == 0.95 and body["max_completion_tokens"] == 64
    assert body["thinking_budget"] == 256 and body["min_thinking_tokens"] == 32
    assert "temp" not in body and "max_tokens" not in body


def test_a_truncated_reply_is_flagged_or_asked_again_with_more_tokens(tmp_path):
    def schedule(body):
        return ["truncated"] * 9 if body["max_tokens"] < 100 else ["ok"]

    with FaultServer(schedule=schedule) as server:
        flagged = ChatClient(fast_config(server), tmp_path / "a").chat(ask("long question"))
        longer = ChatClient(fast_config(server, truncated_retry_max_tokens=512), tmp_path / "b").chat(ask("long question"))
    assert flagged.truncated and flagged.finish_reason == "length"
    assert not longer.truncated and longer.content
    assert [body["max_tokens"] for body in server.bodies] == [64, 64, 512]


def test_the_api_key_is_sent_but_never_written(tmp_path):
    with FaultServer(schedule=lambda body: ["ok"]) as server:
        reply = ChatClient(fast_config(server), tmp_path / "cache").chat(ask("q"))
    assert server.authorization == {f"Bearer {SECRET}"}
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1 and reply.key in files[0].name
    assert SECRET not in files[0].read_text()


def test_a_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("M1_TEST_API_KEY")
    client = ChatClient(ClientConfig(base_url="https://api.example.com/v1", api_key_env="M1_TEST_API_KEY"),
                        tmp_path / "cache")
    with pytest.raises(ClientFatal, match="set the environment variable M1_TEST_API_KEY"):
        client.chat(ask("q"))


def test_reasoning_is_read_from_any_of_the_usual_places():
    def body(message, finish="stop"):
        return {"model": "m", "choices": [{"message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5}}

    assert parse_completion(body({"content": "B", "reasoning_content": "r1"}))["reasoning"] == "r1"
    assert parse_completion(body({"content": "B", "reasoning": "r2"}))["reasoning"] == "r2"
    tagged = parse_completion(body({"content": "<think>\nr3\n</think>\n\nThe answer is B"}))
    assert (tagged["reasoning"], tagged["content"]) == ("r3", "The answer is B")
    # Some servers strip the opening tag and return only the closing one.
    assert parse_completion(body({"content": "r4</think>B"}))["reasoning"] == "r4"
    plain = parse_completion(body({"content": "Just B"}))
    assert plain == {"content": "Just B", "reasoning": "", "finish_reason": "stop", "model": "m",
                     "usage": {"prompt_tokens": 3, "completion_tokens": 5, "reasoning_tokens": 0},
                     "reasoning_reported": False, "thinking_closed": True}
    # An opening tag that never closes: all of it is thinking, and the thinking never ended.
    unclosed = parse_completion(body({"content": "<think>\nr5 and on"}))
    assert (unclosed["reasoning"], unclosed["content"], unclosed["thinking_closed"]) == ("r5 and on", "", False)
    cut = parse_completion({"model": "m", "choices": [{"message": {"content": "", "reasoning_content": "r6"},
                                                        "finish_reason": "length"}]})
    assert cut["thinking_closed"] is False and cut["finish_reason"] == "length"


def test_the_cache_key_is_the_request_and_nothing_else():
    body = {"model": "m", "messages": ask("q"), "max_tokens": 8}
    assert request_key(body) == request_key(dict(reversed(body.items())))
    assert request_key(body) != request_key(body | {"max_tokens": 9})
    assert request_key(body) != request_key(body | {"messages": ask("q ")})


def test_local_kind_rejects_fields_the_engine_does_not_read():
    with pytest.raises(ValueError, match="reasoning_effort"):
        ClientConfig(kind="local", model="smollm2-135m", extra_body={"reasoning_effort": "high"})


def test_the_rate_limiter_keeps_each_window_within_its_limit(monkeypatch):
    monkeypatch.setattr(RateLimiter, "WINDOW", 0.05)
    limiter = RateLimiter(requests_per_minute=2, tokens_per_minute=None)
    stamps = [limiter.acquire(1)[0] for _ in range(5)]
    # Any three consecutive requests span at least one window (a lower bound: cannot flake when slow).
    assert all(stamps[i + 2] - stamps[i] >= 0.05 for i in range(3))
    tokens = RateLimiter(requests_per_minute=None, tokens_per_minute=100)
    first = tokens.acquire(80)
    tokens.settle(first, 10)  # the reply used far less than estimated: the next request fits at once
    second = tokens.acquire(80)
    assert [entry[1] for entry in tokens._sent] == [10.0, 80.0] and second is tokens._sent[-1]
