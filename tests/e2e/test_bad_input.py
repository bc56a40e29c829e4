"""Every bad request gets a 4xx naming the problem, never a 5xx, and nothing is stored."""

import httpx
import pytest

from tests.e2e.client import market, stream, submit

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


async def test_health_readiness_metrics_and_openapi_are_served(stack):
    async with stack.client() as client:
        assert (await client.get("/health")).json()["status"] == "ok"
        assert (await client.get("/healthz")).status_code == 200
        ready = (await client.get("/readyz")).json()
        assert ready["checks"] == {"nats": True, "postgres": True}
        assert "engine_http_requests_total" in (await client.get("/metrics")).text
        schema = (await client.get("/schema/openapi.json")).json()
        assert "/api/orders/execute" in schema["paths"]
