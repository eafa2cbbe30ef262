"""The API-key and Host checks of m1's web servers (`m1 serve`, `m1 view`): one rule, one place.

    api_key = api_key_from_env("M1_API_KEY")                      # None when unset or empty
    router = APIRouter(dependencies=[Depends(key_check(api_key, refuse=lambda: MyError(401)))])
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts("127.0.0.1"))

The key comes only from the environment (never a flag, never a file in the repository), so it is
not in shell history or `ps`. A request carries it as `Authorization: Bearer <key>` (OpenAI's
clients) or `x-api-key: <key>` (Anthropic's); with `basic=True` also as the password of HTTP
Basic auth, which is what a browser can send (it asks for it once and sends it with every page
and asset). Every candidate is compared in constant time, so timing tells nothing about the key;
the key is never logged or echoed. Without a key, every request passes. `LOOPBACK` names the
hosts that only this machine reaches.

The Host check stops DNS rebinding: a page of another site whose name the attacker's DNS then
points at 127.0.0.1 reaches a loopback server, but its requests carry the site's name as Host.
`trusted_hosts` is what a server listening on an address answers to: the loopback names and the
address itself; every name when it listens on all interfaces (then m1 view requires a key, which
such a page does not have).
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's Annotated parameters
# from the live annotations.
import base64
import binascii
import hmac
import os
from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

# Host names a server listens on when only this machine can reach it.
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# The same as a Host header names them (an IPv6 address in brackets).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# Addresses that listen on every interface: any name that reaches the machine is the server's.
ALL_INTERFACES = ("0.0.0.0", "::", "")


def trusted_hosts(host: str) -> list[str]:
    """The Host header values a server listening on `host` answers (starlette's
    TrustedHostMiddleware patterns): the loopback names and `host`, or "*" on all interfaces."""
    if host in ALL_INTERFACES:
        return ["*"]
    named = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return list(dict.fromkeys([*LOOPBACK_HOSTS, named.lower()]))


def api_key_from_env(name: str) -> str | None:
    """The key in environment variable `name`; None when it is unset or empty."""
    return os.environ.get(name) or None


def key_matches(expected: str, sent: Iterable[str | None]) -> bool:
    """Whether any sent key (surrounding whitespace ignored) is `expected`, every one compared in
    constant time."""
    want = expected.encode()
    return any([hmac.compare_digest(key.strip().encode(), want) for key in sent if key])


def basic_password(authorization: str | None) -> str | None:
    """The password of an `Authorization: Basic base64(user:password)` header (None otherwise)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return password if colon else None


def key_check(api_key: str | None, refuse: Callable[[], Exception], *, basic: bool = False) -> Callable:
    """A FastAPI dependency that raises `refuse()` unless the request carries `api_key` (always
    passes when `api_key` is None); `basic` also takes it as an HTTP Basic password."""

    async def authenticate(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(HTTPBearer(auto_error=False))],
        x_api_key: Annotated[str | None, Security(APIKeyHeader(name="x-api-key", auto_error=False))],
    ) -> None:
        if api_key is None:
            return
        sent = [bearer.credentials if bearer else None, x_api_key]
        if basic:
            sent.append(basic_password(request.headers.get("authorization")))
        if not key_matches(api_key, sent):
            raise refuse()

    return authenticate
