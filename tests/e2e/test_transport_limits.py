"""The transport refuses what it cannot read in time or at all, and answers browsers safely."""

import httpx
import pytest

from tests.e2e.conftest import own_stack
from tests.e2e.hostile import HARDENED_ENV, HOSTILE_RECORD, HOSTILE_KEY, TIMEOUT_S, UNKNOWN_ID, nothing_stored
from tests.e2e.rawhttp import RawAnswer, exchange, writes


# The gateway with short transport timeouts, CORS for one origin and a public URL.
stack = own_stack(HARDENED_ENV, keys=(HOSTILE_RECORD,))


def order() -> bytes:
    return b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}'


# Transport: requests that never complete, or are too large to read.

HEAD = (b"POST /api/orders HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + HOSTILE_KEY.encode() + b"\r\n")


def assert_refused(answer: RawAnswer, status: int) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json" and answer.headers["connection"] == "close"
    assert answer.json()["error"] and answer.json()["detail"]
    assert "server" not in answer.headers


@pytest.mark.parametrize("name,send", [
    ("idle connection", writes()),
    ("half a request line", writes(b"POST /api/ord")),
    ("headers never end", writes(HEAD)),
    ("headers trickle", writes(HEAD, *[b"X-Slow: y\r\n"] * 100, pause=0.2)),
])
async def test_a_client_slow_to_send_its_headers_gets_408_within_the_timeout(stack, name, send):
    async with nothing_stored(stack):
        answer = await exchange(stack.base_url, send)
    assert_refused(answer, 408)
    assert answer.seconds < TIMEOUT_S + 2


@pytest.mark.parametrize("name,send", [
    ("body shorter than its Content-Length", writes(HEAD + b"Content-Length: 200\r\n\r\n" + order()[:-1])),
    ("whole body short by one byte", writes(HEAD + b"Content-Length: %d\r\n\r\n" % len(order()) + order()[:-1])),
    ("body trickles", writes(HEAD + b"Content-Length: 200\r\n\r\n", *[b" "] * 200, pause=0.1)),
    ("chunked body never ends", writes(HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":")),
])
async def test_a_client_slow_to_send_its_body_gets_408_within_the_timeout_and_nothing_is_stored(stack, name, send):
    async with nothing_stored(stack):
        answer = await exchange(stack.base_url, send)
    assert_refused(answer, 408)
    assert answer.seconds < TIMEOUT_S + 2


@pytest.mark.parametrize("name,request_bytes,status", [
    ("long path", b"GET /api/orders/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: g\r\n\r\n", 414),
    ("long query", b"GET /api/orders?status=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: g\r\n\r\n", 414),
    ("long query, with a body after it", b"POST /api/orders?" + b"a" * 300_000, 414),
    ("long WebSocket path", b"GET /api/orders/" + b"a" * 9000 + b"/stream HTTP/1.1\r\nHost: g\r\nUpgrade: websocket\r\n"
     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 414),
    ("one huge header", HEAD + b"X-Big: " + b"b" * 20_000 + b"\r\n\r\n", 431),
    ("a huge header in one write, then more", HEAD + b"X-Big: " + b"b" * 200_000, 431),
    ("many headers", HEAD + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n", 431),
    ("not HTTP", b"HELLO\r\n\r\n", 400),
    ("bad content length", HEAD + b"Content-Length: 1x\r\n\r\n", 400),
])
async def test_an_oversized_or_malformed_request_head_is_refused_with_json(stack, name, request_bytes, status):
    async with nothing_stored(stack):
        answer = await exchange(stack.base_url, writes(request_bytes))
    assert_refused(answer, status)


# Browser safety.

async def test_every_answer_carries_the_security_headers_and_no_server_banner(stack):
    async with stack.client() as client:
        for path in ("/api/orders", f"/api/orders/{UNKNOWN_ID}", "/nowhere", "/health"):
            response = await client.get(path)
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "default-src 'none'" in response.headers["content-security-policy"]
            assert "server" not in response.headers
        schema = await client.get("/schema/openapi.json")
        assert schema.status_code == 200 and "frame-ancestors 'none'" in schema.headers["content-security-policy"]


async def test_the_console_is_served_with_a_csp_of_its_own_origin_and_the_api_keeps_none(stack):
    async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
        page = await anonymous.get("/")
        script = await anonymous.get("/console/app.js")
        api = await anonymous.get("/api/orders")
    assert page.status_code == script.status_code == 200
    assert page.headers["content-type"].startswith("text/html") and "javascript" in script.headers["content-type"]
    for answer in (page, script):
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and answer.headers["x-frame-options"] == "DENY"
    assert api.status_code == 401 and api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


async def test_cors_answers_only_the_allowed_origins(stack):
    async with stack.client() as client:
        allowed = await client.options("/api/orders", headers={
            "origin": "https://app.example", "access-control-request-method": "POST",
            "access-control-request-headers": "x-api-key, content-type"})
        other = await client.get("/api/orders", headers={"origin": "https://evil.example"})
    assert allowed.status_code == 204 and allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


