"""Who is calling: the API key on every /api request and stream, checked before anything else.

A request names its key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. A browser
cannot set headers on a WebSocket, so a stream also takes the key as a subprotocol: the
client offers `["engine.v1", "bearer.<key>"]` (a key is made of token characters, see
shared.accounts) and the server accepts with `engine.v1`, never echoing the key. The key
never goes into the URL, which proxies and access logs record. A missing,
malformed, unknown or revoked key gets 401 (a stream is accepted and closed with 4401, so
a browser client sees why), and nothing behind it runs. A known key is then counted
against its rate limit (`submit` for POST and DELETE, `read` for the rest) and, for a
stream, against its open-stream cap; over either gets 429 (a stream: close 4429).

Key records are read from the accounts bucket and kept for `ttl` seconds, so a check is
a dictionary look-up and a hash; a revocation reaches every replica within `ttl`. While
NATS cannot answer, records already held keep working.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import ApiError
from services.gateway.limits import RateLimiter, StreamSlots
from shared import accounts
from shared.accounts import ApiKey, KeyStore

log = logging.getLogger(__name__)

PUBLIC_PREFIX = "/api/"
#: The subprotocol a stream is accepted with when the client offers it (browsers require
#: the server to select one of those offered, or they drop the connection).
SUBPROTOCOL = "engine.v1"
#: The offered subprotocol that carries the API key: `bearer.<key>`.
KEY_PROTOCOL_PREFIX = "bearer."
_NEGATIVE_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    submit_rate: int
    read_rate: int
    max_streams: int


@dataclass(frozen=True, slots=True)
class Caller:
    account: str
    key_id: str
    limits: Limits


class KeyCache:
    """Key records by key id, each re-read from the bucket at most every `ttl` seconds."""

    def __init__(self, store: KeyStore, *, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._held: dict[str, tuple[float, ApiKey]] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()

    async def record(self, key_id: str) -> ApiKey | None:
        now = self._clock()
        held = self._held.get(key_id)
        if held is not None and now - held[0] < self._ttl:
            return held[1]
        missed = self._unknown.get(key_id)
        if missed is not None and now - missed < self._ttl:
            return None
        try:
            record = await self._store.get(key_id)
        except Exception as exc:
            if held is not None:  # NATS away: a key seen before keeps working
                return held[1]
            log.warning("accounts bucket unavailable: %r", exc)
            raise ApiError(
                503, "unavailable", "API keys cannot be checked right now; retry shortly",
                extra_headers={"Retry-After": "1"},
            ) from None
        if record is None:
            self._held.pop(key_id, None)
            self._unknown[key_id] = now
            self._unknown.move_to_end(key_id)
            while len(self._unknown) > _NEGATIVE_ENTRIES:
                self._unknown.popitem(last=False)
            return None
        self._held[key_id] = (now, record)
        return record


class Guard:
    """Authentication, rate limits and stream caps, for the middleware below."""

    def __init__(self, keys: KeyCache, limiter: RateLimiter, defaults: Limits):
        self.keys = keys
        self.limiter = limiter
        self.defaults = defaults
        self.slots = StreamSlots()

    async def authenticate(self, presented: str | None) -> Caller:
        if not presented:
            raise _unauthorized("send your API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        key_id = accounts.key_id_of(presented)
        record = await self.keys.record(key_id) if key_id else None
        if record is None or not accounts.verify(presented, record):
            raise _unauthorized("the API key is not valid (unknown, revoked or mistyped)")
        d = self.defaults
        limits = Limits(
            submit_rate=record.submit_rate if record.submit_rate is not None else d.submit_rate,
            read_rate=record.read_rate if record.read_rate is not None else d.read_rate,
            max_streams=record.max_streams if record.max_streams is not None else d.max_streams,
        )
        return Caller(account=record.account, key_id=record.key_id, limits=limits)


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, extra_headers={"WWW-Authenticate": 'Bearer realm="api"'})


def presented_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
        elif name == b"x-api-key":
            return value.decode("latin-1").strip()
    for offered in scope.get("subprotocols", ()):  # a stream's only way to carry a key from a browser
        if offered.startswith(KEY_PROTOCOL_PREFIX):
            return offered[len(KEY_PROTOCOL_PREFIX):]
    return None


def selecting_subprotocol(scope: Scope, send: Send) -> Send:
    """`send` that accepts a stream with `engine.v1` when the client offered it."""
    if SUBPROTOCOL not in scope.get("subprotocols", ()):
        return send

    async def accept_with_protocol(message: Message) -> None:
        if message["type"] == "websocket.accept" and not message.get("subprotocol"):
            message = {**message, "subprotocol": SUBPROTOCOL}
        await send(message)

    return accept_with_protocol


def api_guard(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: every /api request and stream is authenticated and counted first."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        kind = _kind(scope)
        if kind is None:
            await app(scope, receive, send)
            return
        guard: Guard = scope["app"].state.guard
        is_stream = scope["type"] == "websocket"
        if is_stream:
            send = selecting_subprotocol(scope, send)
        try:
            caller = await guard.authenticate(presented_key(scope))
            limit = caller.limits.submit_rate if kind == "submit" else caller.limits.read_rate
            decision = await guard.limiter.hit(caller.key_id, kind, limit)
            if not decision.allowed:
                raise ApiError(
                    429,
                    "rate_limited",
                    f"more than {limit} {kind} requests in {decision.window_s} s for this key; "
                    f"retry in {decision.reset_s} s",
                    extra_headers=decision.headers(),
                )
        except ApiError as refusal:
            if not is_stream:
                raise
            await _refuse_stream(receive, send, 4000 + refusal.status, refusal.detail)
            return
        scope["user"] = caller.account
        scope["auth"] = caller
        if is_stream:
            if not guard.slots.take(caller.key_id, caller.limits.max_streams):
                detail = f"this key already has {caller.limits.max_streams} open streams on this gateway"
                await _refuse_stream(receive, send, 4429, detail)
                return
            try:
                await app(scope, receive, send)
            finally:
                guard.slots.give_back(caller.key_id)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await app(scope, receive, with_headers)

    return middleware


def _kind(scope: Scope) -> str | None:
    """`submit` or `read` for what the guard checks; None for what it lets through."""
    if scope["type"] == "websocket":
        return "read" if scope["path"].startswith(PUBLIC_PREFIX) else None
    if scope["type"] != "http" or not scope["path"].startswith(PUBLIC_PREFIX):
        return None
    method = scope["method"]
    if method == "OPTIONS":
        return None  # a CORS preflight carries no credentials
    return "submit" if method in ("POST", "DELETE") else "read"


async def _refuse_stream(receive: Receive, send: Send, code: int, reason: str) -> None:
    """Accept, then close with `code`: a refused upgrade would hide the reason from browsers."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason[:120]})
