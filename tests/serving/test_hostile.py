"""Hostile and malformed requests against a real `m1 serve` process (uvicorn's own HTTP parser, the
shared server of conftest.py): every one gets a JSON 4xx, none a 5xx, within a bounded time, and
the server answers a good request afterwards.

The bodies come from a seeded generator, several hundred of them: bad and truncated JSON, integer
literals of thousands of digits, 1e999, NaN and Infinity, nesting up to 100,000 levels, lone
surrogates, bytes that are not UTF-8, wrong content types, huge arrays, and a wrong-typed value in
every field of every endpoint's schema, nested ones included. The fields come from the pydantic
request models, so a field added to the API is fuzzed without editing this file.

    PYTHONPATH=src .venv/bin/python -m pytest tests/serving/test_hostile.py -q
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Iterator
from typing import Annotated, Any, get_args, get_origin

import httpx
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from m1.serving.app import create_app
from m1.engine.wire.anthropic import MessagesRequest
from m1.engine.wire.protocol import NEUTRAL, ChatRequest, CompletionRequest

from .conftest import MODEL

SEED = 1729
BODY_LIMIT = 200_000  # the shared server's --max-body-bytes
JSON_TYPE = {"content-type": "application/json"}

# A good body per endpoint holding every nested model (a list-of-parts message, stream options, an
# early exit with free-form and with letter probes, OpenRouter's reasoning), so that each nested field has a
# place to be broken.
ENDPOINTS: dict[str, tuple[type[BaseModel], dict[str, Any]]] = {
    "/v1/chat/completions": (ChatRequest, {
        "model": MODEL, "max_tokens": 2, "thinking_budget": 2, "stream_options": {"include_usage": False},
        "early_exit": {"every": 1, "probe_tokens": 1, "transitions": ["\n\n"], "observe": True},
        "reasoning": {"max_tokens": 2, "exclude": False},  # OpenRouter's; the same budget as thinking_budget
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
    "/v1/completions": (CompletionRequest, {
        "model": MODEL, "prompt": "hi", "max_tokens": 2, "thinking_budget": 2,
        "stream_options": {"include_usage": False}, "early_exit": {"method": "consistency", "every": 1, "choices": ["A", "B"]},
        "reasoning": {"max_tokens": 2}}),
    "/v1/messages": (MessagesRequest, {
        "model": MODEL, "max_tokens": 4, "thinking": {"type": "enabled", "budget_tokens": 2},
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "stop_sequences": ["\n\n"], "early_exit": {"every": 1, "probe_tokens": 1},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}]}),
}

# JSON values of every type; a field's wrong values are those its own annotation rejects.
POOL: list[Any] = [None, True, False, 0, -1, 7, 2.5, -0.5, "", "x", "12", [], [1], ["x"], [[1]], [None], {}, {"a": 1},
                   [{"role": "user"}], 10**30]
# Raw literals no JSON encoder writes, spliced in as a field's value or sent as the whole body.
LITERALS = ["9" * 5000, "-" + "8" * 7000, "1" + "0" * 4400, "1e999", "-1e999", "NaN", "Infinity", "-Infinity",
            '"\\ud800"', '"ok\\udfffok"', "[" * 20_000 + "]" * 20_000, '{"a":' * 15_000 + "1" + "}" * 15_000,
            "[" * 60_000 + "1" + "]" * 60_000]
BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80"]
PLACEHOLDER = "\u0000m1-hostile\u0000"


def models_in(annotation: Any, via_list: bool = False) -> Iterator[tuple[type[BaseModel], bool]]:
    """Each pydantic model an annotation holds (Model, list[Model], Model | None), and whether inside a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, via_list
    for arg in get_args(annotation):
        yield from models_in(arg, via_list or get_origin(annotation) is list)


def field_paths(model: type[BaseModel], prefix: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path in a body, strict annotation) for every field of a request model, nested models included."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path, Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        for inner, via_list in models_in(field.annotation):
            yield from field_paths(inner, (*path, 0) if via_list else path)


def wrong_values(annotation: Any) -> list[Any]:
    adapter = TypeAdapter(annotation)
    wrong = []
    for value in POOL:
        try:
            adapter.validate_python(value)
        except ValidationError:
            wrong.append(value)
    return wrong


def set_at(body: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def spliced(body: dict[str, Any], path: tuple, literal: str) -> bytes:
    return encode(set_at(body, path, PLACEHOLDER)).replace(json.dumps(PLACEHOLDER).encode(), literal.encode())


def hostile_requests(seed: int = SEED) -> Iterator[tuple[str, str, bytes, dict[str, str]]]:
    """(what, route, body, headers): all of them must be refused with a 4xx."""
    rng = random.Random(seed)
    for route, (model, good) in ENDPOINTS.items():
        encoded = encode(good)
        for path, annotation in field_paths(model):
            name = ".".join(map(str, path))
            wrong = wrong_values(annotation)
            assert wrong, f"no wrong value in the pool for {name}"
            for value in rng.sample(wrong, min(3, len(wrong))):
                yield f"wrong type {name}={json.dumps(value)[:20]}", route, encode(set_at(good, path, value)), JSON_TYPE
            for literal in rng.sample(LITERALS, 3):
                yield f"literal {name}={literal[:12]}", route, spliced(good, path, literal), JSON_TYPE
        for name, neutral in NEUTRAL.items():  # OpenAI fields accepted only at their neutral value
            value = rng.choice([v for v in POOL if json.dumps(v) not in {json.dumps(ok) for ok in neutral}])
            yield f"unsupported {name}={json.dumps(value)[:20]}", route, encode({**good, name: value}), JSON_TYPE
        for literal in LITERALS + ["[" * 100_000 + "]" * 100_000]:
            yield f"body {literal[:12]}", route, literal.encode(), JSON_TYPE
        for raw in (b"", b" ", b"null", b"true", b"[]", b"[{}]", b"1", b'"text"', b"{", b"}", b"{'model': 'x'}",
                    b'{"model": "x",}', b"// comment\n{}", encoded + b"x", encoded + encoded, b"\xef\xbb\xbf" + encoded,
                    json.dumps(good).encode("utf-16"), json.dumps(good).encode("utf-32"), bytes(range(256))):
            yield f"junk {raw[:12]!r}", route, raw, JSON_TYPE
        for cut in sorted(rng.sample(range(len(encoded)), 12)):  # a prefix of a JSON object is never one
            yield f"truncated at {cut}", route, encoded[:cut], JSON_TYPE
        for bad in BAD_UTF8:
            at = encoded.index(b'"' + MODEL.encode()) + 3  # inside a string value
            yield f"not UTF-8 {bad!r}", route, encoded[:at] + bad + encoded[at:], JSON_TYPE
        for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                             "application/jsonx", "json", "text/json"):
            yield f"content type {content_type}", route, encoded, {"content-type": content_type} if content_type else {}
        huge = {"messages": [1] * 60_000, "stop": ["a"] * 40_000, "stop_token_ids": [-1] * 50_000,
                "prompt": [[1]] * 40_000, "model": ["m"] * 40_000, "logit_bias": {str(i): 1 for i in range(9000)},
                "max_tokens": list(range(30_000))}
        for name, value in huge.items():
            yield f"huge {name}", route, encode({**good, name: value}), JSON_TYPE
        yield "over the body limit", route, encode({**good, "stop": ["x" * (BODY_LIMIT + 1)]}), JSON_TYPE
        prompt = ("messages", 0, "content", 0, "text") if "messages" in good else ("prompt",)
        yield "prompt longer than the context", route, encode(set_at(good, prompt, "word " * 30_000)), JSON_TYPE


def test_the_fuzzer_covers_every_route_that_takes_a_body() -> None:
    app = create_app(None, served_model=MODEL)
    posted = {route.path for route in app.routes if "POST" in getattr(route, "methods", ())}
    assert posted == set(ENDPOINTS), "a new POST route needs its request model in ENDPOINTS"


def test_the_generator_is_bounded_and_seeded() -> None:
    first = list(hostile_requests())
    assert 300 <= len(first) <= 400 * len(ENDPOINTS)  # about 350 per route
    assert first == list(hostile_requests())
    assert max(len(body) for _what, _route, body, _headers in first) <= 2 * BODY_LIMIT


def refusals(response) -> str | None:
    """Why a reply is not a JSON 4xx error in the server's shape (None when it is one)."""
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"content type {response.headers.get('content-type')}"
    error = response.json().get("error")
    if not (isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)):
        return f"body {response.text[:120]}"
    return None


@pytest.mark.slow
def test_hostile_bodies_get_a_json_4xx_and_the_server_stays_up(server, http) -> None:
    tracebacks_before = server.log().count("Traceback")
    requests = list(hostile_requests())
    failures, statuses = [], set()
    started = time.perf_counter()
    for what, route, body, headers in requests:
        query = random.Random(what).choice(["", "?stream=true", "?%ff%00=%zz&&=", "?" + "a=b&" * 500])
        try:
            response = http.post(route + query, content=body, headers=headers, timeout=60)
        except httpx.TransportError as err:  # a reset connection is no answer either
            failures.append(f"{route} {what}: {type(err).__name__}")
            continue
        statuses.add(response.status_code)
        if (why := refusals(response)) is not None:
            failures.append(f"{route} {what}: {why}")
    elapsed = time.perf_counter() - started
    assert not failures, f"{len(failures)} of {len(requests)} not a JSON 4xx:\n" + "\n".join(failures[:15])
    assert {400, 413, 415} <= statuses
    assert elapsed < 180, f"{len(requests)} refusals took {elapsed:.0f} s"
    # Each refusal came from a check written for it, not from the catch-all (which logs a traceback).
    assert server.log().count("Traceback") == tracebacks_before
    assert "request refused: admitting it raised" not in server.log()
    for route, (_model, good) in ENDPOINTS.items():
        response = http.post(route, json=good)
        assert response.status_code == 200, response.text


@pytest.mark.slow
def test_junk_query_strings_on_gets_change_nothing(http) -> None:
    rng = random.Random(SEED)
    junk = ["%", "%zz", "%ff%fe", "%00", "a=" + "%c3%28" * 50, "&&&==", "x=" + "9" * 5000, "a[]=1&a[][]=2",
            "".join(rng.choice("abc%=&+;#") for _ in range(300))]
    for path in ("/health", "/v1/models"):
        plain = http.get(path).json()
        for query in junk:
            response = http.get(f"{path}?{query}")
            assert response.status_code == 200 and response.json().keys() == plain.keys(), (path, query)
    for query in junk:
        response = http.get(f"/v1/nothing?{query}")
        assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"
