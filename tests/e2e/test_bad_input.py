"""Every bad request gets a 4xx naming the problem, never a 5xx, and nothing is stored."""

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from shared import accounts
from shared.topology import Topology
from tests.e2e.client import market, stream, submit
from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.e2e.rawhttp import RawAnswer, exchange, writes

BAD_BODIES = [
    ("malformed JSON", b'{"tokenIn": "SOL",', 400, "body"),
    ("not an object", b'[1, 2]', 400, "body"),
    ("empty body", b"", 400, "body"),
    ("missing tokenIn", b'{"tokenOut": "USDC", "amount": "1"}', 400, "tokenIn"),
    ("tokenIn wrong type", b'{"tokenIn": 5, "tokenOut": "USDC", "amount": "1"}', 400, "tokenIn"),
    ("unknown token", b'{"tokenIn": "DOGE", "tokenOut": "USDC", "amount": "1"}', 400, "tokenIn"),
    ("unknown tokenOut", b'{"tokenIn": "SOL", "tokenOut": "XYZ", "amount": "1"}', 400, "tokenOut"),
    ("same token both sides", b'{"tokenIn": "SOL", "tokenOut": "sol", "amount": "1"}', 400, "tokenOut"),
    ("missing amount", b'{"tokenIn": "SOL", "tokenOut": "USDC"}', 400, "amount"),
    ("zero amount", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0"}', 400, "amount"),
    ("negative amount", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": -1}', 400, "amount"),
    ("NaN amount", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "NaN"}', 400, "amount"),
    ("infinite amount", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "Infinity"}', 400, "amount"),
    ("huge amount", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1e30"}', 400, "amount"),
    ("huge integer", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": 100000000000000000000000}', 400, "amount"),
    ("too many decimals", b'{"tokenIn": "USDC", "tokenOut": "SOL", "amount": "1.0000001"}', 400, "amount"),
    ("amount as boolean", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": true}', 400, "amount"),
    ("amount as text", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "lots"}', 400, "amount"),
    ("slippage negative", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": -5}', 400, "slippageBps"),
    ("slippage too high", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 20000}', 400, "slippageBps"),
    ("slippage fractional", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": 1.5}', 400, "slippageBps"),
    ("slippage as text", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": "50"}', 400, "slippageBps"),
    ("unknown order type", b'{"orderType": "stop", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}', 400, "orderType"),
    ("unknown field", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slipage": 5}', 400, "slipage"),
    ("bad clientOrderId", b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "clientOrderId": "a b"}', 400,
     "clientOrderId"),
]


@pytest.mark.parametrize("body,status,field", [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
async def test_a_bad_order_is_refused_with_a_4xx_naming_the_field(stack, body, status, field):
    async with stack.client() as client:
        response = await client.post("/api/orders/execute", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["field"] == field and payload["error"] and payload["detail"]


async def test_an_oversized_body_is_refused_with_413(stack):
    async with stack.client() as client:
        body = b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "pad": "' + b"x" * 100_000 + b'"}'
        response = await client.post("/api/orders", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


async def test_unknown_and_malformed_order_ids_are_404(stack):
    async with stack.client() as client:
        for path in ("/api/orders/0190aaaa-0000-7000-8000-000000000000", "/api/orders/status/no.such>id",
                     "/api/orders/nope/events"):
            response = await client.get(path)
            assert response.status_code == 404 and response.json()["error"] in ("order_not_found", "not_found")


async def test_list_parameters_are_validated(stack):
    async with stack.client() as client:
        for params, field in (({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"status": "done"}, "status"),
                              ({"cursor": "garbage!"}, "cursor")):
            response = await client.get("/api/orders", params=params)
            assert response.status_code == 400 and response.json()["field"] == field


async def test_a_repeated_client_order_id_returns_the_same_order_and_a_different_body_conflicts(stack):
    async with stack.client() as client:
        key = "idem-" + stack.schema
        first = await client.post("/api/orders", json=market("0.2", clientOrderId=key))
        again = await client.post("/api/orders/execute", json=market("0.200", clientOrderId=key))
        other = await client.post("/api/orders", json=market("0.3", clientOrderId=key))
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["orderId"] == first.json()["orderId"]
    assert other.status_code == 409 and other.json()["field"] == "clientOrderId"


async def test_a_stream_with_a_bad_after_seq_says_so(stack):
    async with stack.client() as client:
        order = await submit(client, market("0.01"))
    messages, code = await stream(stack, order["orderId"], after_seq="x")  # type: ignore[arg-type]
    assert code == 1008 and messages[0]["field"] == "afterSeq"


async def test_health_and_openapi_are_public_and_metrics_are_on_the_ops_port(stack):
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        assert (await client.get("/health")).json()["status"] == "ok"
        assert (await client.get("/healthz")).status_code == 200
        ready = (await client.get("/readyz")).json()
        assert ready["checks"] == {"nats": True, "postgres": True}
        assert (await client.get("/metrics")).status_code == 404
        schema = (await client.get("/schema/openapi.json")).json()
        assert "/api/orders/execute" in schema["paths"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ops_ports['gateway']}") as ops:
        assert "engine_http_requests_total" in (await ops.get("/metrics")).text
        assert (await ops.get("/readyz")).json()["checks"] == {"nats": True, "postgres": True}


# ---------------------------------------------------------------------------------------
# Families of hostile input. This module's gateway has short transport timeouts (so slow
# senders are cut off quickly), an allow-listed CORS origin and a configured public URL.

TIMEOUT_S = 1.0
HARDENED_ENV = {
    "HEADER_TIMEOUT_S": str(TIMEOUT_S),
    "BODY_TIMEOUT_S": str(TIMEOUT_S),
    "CORS_ALLOW_ORIGINS": "https://app.example",
    "GATEWAY_PUBLIC_URL": "https://api.example",
}
UNKNOWN_ID = "0190aaaa-0000-7000-8000-000000000000"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
async def stack(database_url, stack_credentials, tmp_path_factory) -> AsyncIterator[Stack]:
    running = await start_stack(database_url, stack_credentials, tmp_path_factory.mktemp("stack"), HARDENED_ENV)
    await running.add_key(HOSTILE_RECORD)
    try:
        yield running
    finally:
        await stop_stack(running)


async def stored_orders(stack: Stack) -> int:
    """Orders in the event log: one subject each."""
    nc = await stack.admin_nats()
    try:
        stream = Topology(namespace=stack.env["ENGINE_NAMESPACE"]).orders_stream
        info = await nc.jetstream().stream_info(stream, subjects_filter=">")
        return len(info.state.subjects or {})
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def nothing_stored(stack: Stack) -> AsyncIterator[None]:
    before = await stored_orders(stack)
    yield
    assert await stored_orders(stack) == before, "a refused request stored an order"


def order(**fields) -> bytes:
    return json.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", **fields}).encode()


def gtd(expires_at) -> bytes:
    return order(orderType="limit", limitPrice="1000", timeInForce="GTD", expiresAt=expires_at)


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def post_refused(stack: Stack, body: bytes, status: int, field: str | None, headers=JSON) -> dict:
    async with nothing_stored(stack):
        async with stack.client() as client:
            response = await client.post("/api/orders", content=body, headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error"] and payload["detail"] and payload.get("field") == field, payload
    assert len(response.text) < 1024, "the error echoes unbounded input"
    return payload


FAMILIES = {
    "times a calendar cannot hold": [
        (gtd("9999-12-31T23:59:59Z"), "expiresAt"), (gtd(10**17), "expiresAt"), (gtd(2**63 - 1), "expiresAt"),
        (gtd(-(2**63)), "expiresAt"), (gtd("0001-01-01T00:00:00+01:00"), "expiresAt"),
        (gtd("9999-12-31T23:59:59-23:59"), "expiresAt"), (gtd("+275760-09-13T00:00:00Z"), "expiresAt"),
        (gtd("2026-13-01T00:00:00Z"), "expiresAt"), (gtd("2999-01-01T00:00:00Z"), "expiresAt"),
        (gtd("2030-01-01T00:00:00"), "expiresAt"), (gtd(1.5e12), "expiresAt"),
    ],
    "JSON the decoder refuses": [
        (b"[" * 5000 + b"]" * 5000, "body"), (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", "body"),
        (b'{"tokenIn": "SO\xff", "tokenOut": "USDC", "amount": "1"}', "body"), (b"\xef\xbb\xbf{}", "body"),
        (b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": NaN}', "body"),
        (b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": Infinity}', "body"),
        (b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": 1e400}', "body"),
        (b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": ' + b"9" * 5000 + b"}", "body"),
        (b'{"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "slippageBps": -' + b"9" * 4000 + b"}", "slippageBps"),
        (b'{"tokenIn": "\\ud800", "tokenOut": "USDC", "amount": "1"}', "body"), (b"{} {}", "body"),
        (b'{"tokenIn": "SOL"\x00}', "body"),
    ],
    "digits that are not ASCII digits": [
        (order(amount="\u0661\u0665\u0660"), "amount"), (order(amount="\uff11"), "amount"), (order(amount="\u00b2"), "amount"),
        (order(orderType="limit", limitPrice="\u0661\u0665\u0660"), "limitPrice"),
        (order(orderType="limit", limitPrice="1_000"), "limitPrice"),
        (order(orderType="limit", limitPrice="\u00b9\u00b2"), "limitPrice"),
        (order(orderType="sniper", slippageBps=100, maxPrice="\u0969"), "maxPrice"),
        (order(slippageBps="\u0665\u0660"), "slippageBps"),
    ],
    "keys with a trailing newline": [
        (order(clientOrderId="key\n"), "clientOrderId"), (order(clientOrderId="key\r\n"), "clientOrderId"),
        (order(clientOrderId="k" * 65), "clientOrderId"), (order(clientOrderId="\u0661"), "clientOrderId"),
    ],
    "unbounded values echoed back": [
        (order(tokenIn="X" * 10_000), "tokenIn"), (order(amount="1" * 10_000), "amount"),
        (order(orderType="o" * 10_000), "orderType"), (order(orderType="limit", limitPrice="9" * 5000), "limitPrice"),
        (order(orderType="limit", limitPrice=150, timeInForce="GTD", expiresAt="2" * 5000), "expiresAt"),
    ],
}
CASES = [(name, i, body, field) for name, cases in FAMILIES.items() for i, (body, field) in enumerate(cases)]


@pytest.mark.parametrize("body,field", [c[2:] for c in CASES], ids=[f"{c[0]}-{c[1]}" for c in CASES])
async def test_every_family_of_bad_body_is_a_400_naming_the_field_and_stores_nothing(stack, body, field):
    await post_refused(stack, body, 400, field)


async def test_a_long_unknown_field_name_is_named_but_clipped(stack):
    payload = await post_refused(stack, order(**{"f" * 5000: 1}), 400, "'" + "f" * 62 + "…")
    assert payload["field"].startswith("'fff")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/json; charset=latin-1",
                                          "application/jsonx", "text/json"])
async def test_a_post_that_is_not_declared_json_is_415(stack, content_type):
    headers = {"content-type": content_type} if content_type else {}
    async with nothing_stored(stack):
        async with stack.client() as client:
            response = await client.post("/api/orders", content=order(), headers=headers)
    assert response.status_code == 415 and response.json()["field"] == "content-type"


async def test_json_with_a_utf8_charset_is_accepted_and_ws_url_comes_from_the_public_url(stack):
    async with stack.client() as client:
        response = await client.post("/api/orders", content=order(amount="0.01"),
                                     headers={"content-type": "Application/JSON; charset=UTF-8", "host": "evil.example"})
    assert response.status_code == 202, response.text
    assert response.json()["wsUrl"] == f"wss://api.example/api/orders/{response.json()['orderId']}/stream"


@pytest.mark.parametrize("params", [
    {"limit": "\u00b2"}, {"limit": "\u0661\u0662"}, {"limit": "1" * 1500}, {"limit": "+5"}, {"limit": " 5"},
    {"limit": "5\n"}, {"status": "pending\n"}, {"status": "p" * 1500},
    {"cursor": cursor_of(["2026-01-01T00:00:00", UNKNOWN_ID])},  # no time zone
    {"cursor": cursor_of(["0001-01-01T00:00:00+01:00", UNKNOWN_ID])},
    {"cursor": cursor_of(["9999-12-31T23:59:59-23:59", UNKNOWN_ID])},
    {"cursor": cursor_of(["2026-01-01T00:00:00+00:00", "a\u0000b"])},
    {"cursor": cursor_of(["2026-01-01T00:00:00+00:00", UNKNOWN_ID + "\n"])},
    {"cursor": cursor_of(["2026-01-01T00:00:00+00:00", "x" * 100])},
    {"cursor": cursor_of(["\u0662\u0660\u0662\u0666-01-01T00:00:00+00:00", UNKNOWN_ID])},
    {"cursor": cursor_of([1, 2])}, {"cursor": cursor_of({"a": 1})}, {"cursor": "x" * 1500}, {"cursor": "\u00e9"},
])
async def test_list_parameters_of_every_family_are_a_400_naming_the_parameter(stack, params):
    async with stack.client() as client:
        response = await client.get("/api/orders", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == next(iter(params)) and len(response.text) < 1024


@pytest.mark.parametrize("order_id", [UNKNOWN_ID + "\n", UNKNOWN_ID + "%0A", "a" * 65, "a" * 1500, "a.b", "\u0661"])
async def test_ids_that_cannot_name_an_order_are_404_on_every_path(stack, order_id):
    quoted = order_id.replace("\n", "%0A")
    async with stack.client() as client:
        for method, path in (("GET", f"/api/orders/{quoted}"), ("GET", f"/api/orders/status/{quoted}"),
                             ("GET", f"/api/orders/{quoted}/events"), ("DELETE", f"/api/orders/{quoted}")):
            response = await client.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert len(response.text) < 1024


@pytest.mark.parametrize("order_id", [UNKNOWN_ID + "%0A", "a" * 65, "a" * 1500])
async def test_a_stream_for_an_id_that_cannot_name_an_order_closes_4404_at_once(stack, order_id):
    started = time.monotonic()
    messages, code = await stream(stack, order_id, timeout=5)
    assert code == 4404 and messages == [] and time.monotonic() - started < 3


@pytest.mark.parametrize("after_seq", ["\u00b2", "\u0661", "1" * 1500, "-1", "1%0A", "%20"])
async def test_a_stream_with_an_after_seq_that_is_not_ascii_digits_closes_1008(stack, after_seq):
    messages, code = await stream(stack, UNKNOWN_ID, after_seq=after_seq, timeout=5)  # type: ignore[arg-type]
    assert code == 1008 and messages[0]["field"] == "afterSeq"


@pytest.mark.parametrize("path", ["/api/orders/{id}/stream", "/api/quotes/stream?pair=SOL-USDC"])
async def test_a_client_that_sends_on_a_stream_is_closed_with_1008(stack, path):
    async with asyncio.timeout(5):
        async with websockets.connect(stack.ws_url + path.format(id=UNKNOWN_ID), additional_headers=stack.headers) as ws:
            assert json.loads(await ws.recv())["type"] == "connection"
            await ws.send("hello?")
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
    assert ws.close_code == 1008


async def test_an_oversized_websocket_message_is_closed_with_1009(stack):
    async with asyncio.timeout(5):
        async with websockets.connect(f"{stack.ws_url}/api/orders/{UNKNOWN_ID}/stream", max_size=None, additional_headers=stack.headers) as ws:
            await ws.recv()
            await ws.send("x" * 100_000)
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
    assert ws.close_code == 1009


async def test_a_quote_stream_for_a_bad_pair_says_so_without_echoing_it(stack):
    async with asyncio.timeout(5):
        async with websockets.connect(f"{stack.ws_url}/api/quotes/stream?pair=SOL-{'X' * 1500}", additional_headers=stack.headers) as ws:
            message = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
    assert ws.close_code == 1008 and message["field"] == "pair" and len(message["detail"]) < 300


# Transport: requests that never complete, or are too large to read.

# A key with a known text, stored by the module's stack, so raw requests can carry it.
HOSTILE_KEY, HOSTILE_RECORD = accounts.new_key(
    "hostile", 0, random_bytes=lambda n: bytes(range(n)), submit_rate=100_000, read_rate=100_000, max_streams=1_000
)
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


async def test_cors_answers_only_the_allowed_origins(stack):
    async with stack.client() as client:
        allowed = await client.options("/api/orders", headers={
            "origin": "https://app.example", "access-control-request-method": "POST",
            "access-control-request-headers": "x-api-key, content-type"})
        other = await client.get("/api/orders", headers={"origin": "https://evil.example"})
    assert allowed.status_code in (200, 204) and allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


async def test_after_all_of_this_every_read_still_answers(stack):
    async with stack.client() as client:
        listing = await client.get("/api/orders", params={"limit": "100"})
        assert listing.status_code == 200
        for view in listing.json()["orders"]:
            assert (await client.get(f"/api/orders/{view['orderId']}")).status_code == 200
    log = (stack.logs / "gateway.log").read_text(errors="replace")
    assert "Exception in ASGI application" not in log and "unhandled error" not in log, log[-3000:]
