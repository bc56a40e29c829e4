"""API keys, ownership and per-key limits, against the gateway as a real process."""

import asyncio
import secrets
import subprocess
import sys
import time

import httpx
import websockets

from shared.accounts import KeyStore
from shared.eventlog import EventLog
from shared.topology import Topology
from tests.e2e.client import market, stream, submit
from tests.e2e.conftest import ROOT
from tests.helpers import eventually, free_port

RESTING = {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "limitPrice": "100000"}


def _paths(order_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/orders/{order_id}"),
        ("GET", f"/api/orders/status/{order_id}"),
        ("GET", f"/api/orders/{order_id}/events"),
        ("DELETE", f"/api/orders/{order_id}"),
    ]


async def _close_code(stack, path: str, headers: dict[str, str]) -> int | None:
    async with asyncio.timeout(20):
        async with websockets.connect(f"{stack.ws_url}{path}", additional_headers=headers) as ws:
            try:
                async for _ in ws:
                    pass
            except websockets.ConnectionClosed:
                pass
            return ws.close_code


async def test_without_a_valid_key_every_api_path_answers_401_and_stores_nothing(stack):
    cid = "nokey-" + secrets.token_hex(4)
    async with stack.client() as owner:
        order = await submit(owner, RESTING)
    bad_keys = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer dex_aaaaaaaaaaaa_" + "A" * 43},  # well formed, unknown
        {"X-API-Key": stack.api_key + "x"},
        {"X-API-Key": stack.api_key[:-1] + ("A" if stack.api_key[-1] != "A" else "B")},  # right id, wrong secret
    ]
    async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
        for headers in bad_keys:
            posted = await anonymous.post("/api/orders", json=market(clientOrderId=cid), headers=headers)
            assert posted.status_code == 401, (headers, posted.text)
            assert set(posted.json()) >= {"error", "detail"} and posted.json()["error"] == "unauthorized"
            assert posted.headers["www-authenticate"].startswith("Bearer")
            for method, path in [*_paths(order["orderId"]), ("GET", "/api/orders"), ("GET", "/api/quotes?pair=SOL-USDC")]:
                answer = await anonymous.request(method, path, headers=headers)
                assert answer.status_code == 401, (method, path, headers, answer.text)
        assert await _close_code(stack, f"/api/orders/{order['orderId']}/stream", {}) == 4401
        assert await _close_code(stack, "/api/quotes/stream?pair=SOL-USDC", {"X-API-Key": "nope"}) == 4401
    async with stack.client() as owner:
        # Nothing was stored for the refused POSTs: the key is still free for the owner.
        created = await owner.post("/api/orders", json=market(clientOrderId=cid))
        assert created.status_code == 202, created.text
        assert (await owner.get(f"/api/orders/{order['orderId']}")).json()["status"] == "open"
    # Health, readiness and the schema stay public.
    async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
        for path in ("/health", "/healthz", "/readyz", "/schema/openapi.json"):
            assert (await anonymous.get(path)).status_code == 200, path


async def test_another_accounts_order_is_indistinguishable_from_one_that_does_not_exist(stack):
    stranger_key = await stack.new_key("stranger-" + secrets.token_hex(3))
    async with stack.client() as owner:
        order = await submit(owner, RESTING)
    missing = "0190a0b0-0000-7000-8000-" + secrets.token_hex(6)
    async with stack.client(key=stranger_key) as stranger:
        for (method, path), (_, missing_path) in zip(_paths(order["orderId"]), _paths(missing)):
            theirs = await stranger.request(method, path)
            nothing = await stranger.request(method, missing_path)
            assert theirs.status_code == nothing.status_code == 404, (path, theirs.text)
            assert theirs.json() == {**nothing.json(), "detail": nothing.json()["detail"].replace(missing, order["orderId"])}
        listed = (await stranger.get("/api/orders", params={"limit": 100})).json()["orders"]
        assert order["orderId"] not in {o["orderId"] for o in listed}
    started = time.monotonic()
    messages, code = await stream(stack, order["orderId"], key=stranger_key)
    assert code == 4404 and [m["type"] for m in messages] == ["connection"]
    assert messages[0]["status"] is None and messages[0]["lastSeq"] == 0
    theirs_took = time.monotonic() - started
    started = time.monotonic()
    _, missing_code = await stream(stack, missing, key=stranger_key)
    assert missing_code == 4404
    assert abs(theirs_took - (time.monotonic() - started)) < 1.0, "the wait tells neither apart"
    async with stack.client() as owner:
        assert (await owner.get(f"/api/orders/{order['orderId']}")).json()["status"] == "open", "the stranger's cancel did nothing"


async def test_two_accounts_using_the_same_client_order_id_get_two_orders(stack):
    cid = "shared-" + secrets.token_hex(4)
    other_key = await stack.new_key("other-" + secrets.token_hex(3))
    async with stack.client() as first, stack.client(key=other_key) as second:
        a = await first.post("/api/orders", json=market("0.1", clientOrderId=cid))
        b = await second.post("/api/orders", json=market("0.2", clientOrderId=cid))
        again = await second.post("/api/orders", json=market("0.2", clientOrderId=cid))
    assert (a.status_code, b.status_code, again.status_code) == (202, 202, 200)
    assert a.json()["orderId"] != b.json()["orderId"] == again.json()["orderId"]
    assert a.json()["amountIn"] == "0.1" and b.json()["amountIn"] == "0.2"


async def _fresh_window(client: httpx.AsyncClient) -> None:
    """Wait until the current rate window has most of its length left, so a burst fits in it."""

    async def roomy() -> bool:
        answer = await client.get("/api/orders", params={"limit": 1})
        return int(answer.headers["ratelimit-reset"]) >= 6

    await eventually(roomy, timeout=15, interval=0.25, message="a fresh rate-limit window")


async def test_a_burst_over_the_limit_gets_429_with_retry_after_and_stores_nothing(stack):
    account = "bursty-" + secrets.token_hex(3)
    key = await stack.new_key(account, submit_rate=3)
    async with stack.client(key=key) as client:
        await _fresh_window(client)
        answers = [await client.post("/api/orders", json=market(clientOrderId=f"b{i}")) for i in range(6)]
        assert [a.status_code for a in answers] == [202, 202, 202, 429, 429, 429]
        refused = answers[3]
        assert refused.json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 10
        assert refused.headers["ratelimit-limit"] == "3" and refused.headers["ratelimit-remaining"] == "0"
        assert answers[0].headers["ratelimit-remaining"] == "2"

        async def listed() -> list[str]:
            page = (await client.get("/api/orders", params={"limit": 100})).json()["orders"]
            return sorted(o["clientOrderId"] for o in page)

        await eventually(lambda: _equal(listed(), ["b0", "b1", "b2"]), message="the three accepted orders listed")
    nc = await stack.admin_nats()
    try:
        log = EventLog(nc, nc.jetstream(), Topology(namespace=stack.env["ENGINE_NAMESPACE"]))
        for refused_id in ("b3", "b4", "b5"):
            assert await log.read(await stack.keyed_order_id(refused_id, account)) == []
    finally:
        await nc.close()


async def _equal(value, expected) -> bool:
    return await value == expected


async def test_the_limit_holds_across_gateway_replicas(stack, tmp_path):
    port = free_port()
    env = {**stack.env, **stack.service_env("gateway"), "GATEWAY_PORT": str(port), "OPS_PORT": str(free_port())}
    log = open(tmp_path / "gateway2.log", "wb")
    second = subprocess.Popen([sys.executable, "-m", "services.gateway"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async def ready() -> bool:
            try:
                async with httpx.AsyncClient() as c:
                    return (await c.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(ready, timeout=30, interval=0.1, message="second gateway ready")
        key = await stack.new_key("spread-" + secrets.token_hex(3), submit_rate=4)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=stack.base_url, headers=headers) as one, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as two:
            await _fresh_window(one)
            answers = [await (one if i % 2 else two).post("/api/orders", json=market()) for i in range(10)]
        assert sum(a.status_code == 202 for a in answers) == 4
        assert sum(a.status_code == 429 for a in answers) == 6
    finally:
        second.terminate()
        second.wait(15)


async def test_open_streams_per_key_are_capped(stack):
    key = await stack.new_key("streamer-" + secrets.token_hex(3), max_streams=2)
    async with stack.client(key=key) as client:
        orders = [await submit(client, RESTING) for _ in range(3)]
    headers = {"X-API-Key": key}
    urls = [f"{stack.ws_url}/api/orders/{o['orderId']}/stream" for o in orders]
    async with websockets.connect(urls[0], additional_headers=headers) as a, \
            websockets.connect(urls[1], additional_headers=headers) as b:
        assert (await a.recv()) and (await b.recv())  # connection messages
        assert await _close_code(stack, f"/api/orders/{orders[2]['orderId']}/stream", headers) == 4429
    # Closing one frees its slot.
    async def slot_free() -> bool:
        async with websockets.connect(urls[2], additional_headers=headers) as c:
            return '"connection"' in await c.recv()

    await eventually(slot_free, timeout=10, message="a stream slot given back")


async def test_a_revoked_key_stops_working_within_the_cache_time(stack):
    key = await stack.new_key("revoked-" + secrets.token_hex(3))
    async with stack.client(key=key) as client:
        assert (await client.get("/api/orders")).status_code == 200
        nc = await stack.admin_nats()
        try:
            store = await KeyStore.open(nc.jetstream(), Topology(namespace=stack.env["ENGINE_NAMESPACE"]))
            await store.revoke(key.split("_")[1], int(time.time() * 1000))
        finally:
            await nc.close()

        async def refused() -> bool:
            return (await client.get("/api/orders")).status_code == 401

        await eventually(refused, timeout=10, message="revoked key refused")
