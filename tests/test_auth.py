"""The shared API-key check (m1 serve, m1 view) on a bare app: which headers carry the key, Basic
auth only where asked for, and no key at all lets everything through."""

from __future__ import annotations

import base64

import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from m1.auth import api_key_from_env, basic_password, key_check

KEY = "k3y-for-tests"


class Refused(Exception):
    pass


def client(api_key: str | None, *, basic: bool) -> TestClient:
    app = FastAPI()
    app.exception_handler(Refused)(lambda request, err: JSONResponse({"refused": True}, status_code=401))
    app.get("/", dependencies=[Depends(key_check(api_key, Refused, basic=basic))])(lambda: {"ok": True})
    return TestClient(app)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("basic_auth", [False, True])
def test_bearer_and_x_api_key_carry_the_key(basic_auth: bool) -> None:
    locked = client(KEY, basic=basic_auth)
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"x-api-key": KEY}, {"x-api-key": f" {KEY} "},
                    {"Authorization": "Bearer wrong", "x-api-key": KEY}):
        assert locked.get("/", headers=headers).status_code == 200, headers
    for headers in ({}, {"Authorization": KEY}, {"Authorization": "Bearer wrong"}, {"x-api-key": f"Bearer {KEY}"},
                    {"Authorization": f"Basic {KEY}"}, {"Authorization": basic("me", "wrong")}):
        assert locked.get("/", headers=headers).status_code == 401, headers


def test_basic_auth_only_where_asked_for() -> None:
    headers = {"Authorization": basic("anyone", KEY)}
    assert client(KEY, basic=True).get("/", headers=headers).status_code == 200
    assert client(KEY, basic=False).get("/", headers=headers).status_code == 401


def test_without_a_key_everything_passes(monkeypatch) -> None:
    assert client(None, basic=True).get("/").status_code == 200
    monkeypatch.setenv("M1_TEST_AUTH_KEY", "")
    assert api_key_from_env("M1_TEST_AUTH_KEY") is None
    monkeypatch.setenv("M1_TEST_AUTH_KEY", KEY)
    assert api_key_from_env("M1_TEST_AUTH_KEY") == KEY


def test_basic_password_reads_only_well_formed_headers() -> None:
    assert basic_password(basic("u", "p:q")) == "p:q"
    for header in (None, "", "Basic", "Basic !!!", "Bearer x", "Basic " + base64.b64encode(b"nocolon").decode(),
                   "Basic " + base64.b64encode(b"\xff:\xfe").decode()):
        assert basic_password(header) is None, header
