"""Every bad request gets a 4xx naming the problem, never a 5xx, and nothing is stored."""

import asyncio
import base64
import json
import time

import httpx
import pytest
import websockets

from tests.e2e.client import market, stream, submit
from tests.e2e.conftest import Stack, own_stack
from tests.e2e.hostile import HARDENED_ENV, HOSTILE_RECORD, JSON, UNKNOWN_ID, nothing_stored

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
            assert (response.status_code, response.json()["error"], response.json()["field"]) == (
                404, "order_not_found", "orderId"), path


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
# Families of hostile input, against the hardened gateway (tests/e2e/hostile.py).


# The gateway with short transport timeouts, CORS for one origin and a public URL.
stack = own_stack(HARDENED_ENV, keys=(HOSTILE_RECORD,))


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


async def test_after_all_of_this_every_read_still_answers(stack):
    async with stack.client() as client:
        listing = await client.get("/api/orders", params={"limit": "100"})
        assert listing.status_code == 200
        for view in listing.json()["orders"]:
            assert (await client.get(f"/api/orders/{view['orderId']}")).status_code == 200
    log = (stack.logs / "gateway.log").read_text(errors="replace")
    assert "Exception in ASGI application" not in log and "unhandled error" not in log, log[-3000:]
