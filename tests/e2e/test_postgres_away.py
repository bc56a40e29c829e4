"""PostgreSQL away: the gateway starts, stays ready, accepts and streams orders, reads one
order from the event log, answers listings with a quick 503, and reads the read model
again once PostgreSQL is back, without a restart; the projector catches up meanwhile.

The stack gets a PostgreSQL of its own, which the test stops and starts again on the
same port and data directory.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.client import market, stream, submit
from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.helpers import eventually
from tools import pgroles
from tools.devservers import ServerProcess, start_postgres

# Every order here must reach the one outcome the test expects: the chain never fails.
NO_TRANSIENT_FAILURES = {"CHAIN_FAILURE_RATE": "0"}


@dataclass
class Outage:
    stack: Stack
    postgres: ServerProcess
    data_dir: Path

    def stop_postgres(self) -> None:
        self.postgres.stop()

    def start_postgres(self) -> None:
        """The same cluster on the same port, as after a restart or a failover."""
        self.postgres = start_postgres(data_dir=self.data_dir, port=self.postgres.port, durable=False)


@pytest.fixture(scope="module")
async def outage(stack_credentials, tmp_path_factory) -> AsyncIterator[Outage]:
    # Under the system temp dir, as tests/conftest.py does: as root, PostgreSQL runs as
    # another user, who must be able to reach its cluster directory.
    base = Path(tempfile.mkdtemp(prefix="engine-test-pgaway-"))
    state = Outage(None, start_postgres(data_dir=base / "pg", durable=False), base / "pg")  # type: ignore[arg-type]
    try:
        await pgroles.provision(
            state.postgres.url,
            reader_password=stack_credentials.reader_password,
            writer_password=stack_credentials.writer_password,
            schemas=(),
        )
        state.stack = await start_stack(
            state.postgres.url, stack_credentials, tmp_path_factory.mktemp("stack"), NO_TRANSIENT_FAILURES
        )
        yield state
        if not state.postgres.running():
            state.start_postgres()  # stop_stack drops the stack's schema
        await stop_stack(state.stack)
    finally:
        state.postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


async def ready(stack: Stack) -> httpx.Response | None:
    async with httpx.AsyncClient(timeout=1) as client:
        try:
            response = await client.get(f"{stack.base_url}/readyz")
        except httpx.HTTPError:
            return None
    return response if response.status_code == 200 else None


async def read_model_gauge(stack: Stack) -> float:
    async with httpx.AsyncClient(timeout=1) as client:
        text = (await client.get(f"http://127.0.0.1:{stack.ops_ports['gateway']}/metrics")).text
    match = re.search(r'^engine_read_model_available\{service="gateway"\} (\S+)$', text, re.M)
    assert match, "the gauge is exported"
    return float(match.group(1))


async def test_without_postgresql_the_gateway_starts_accepts_streams_and_reads_from_the_log(outage: Outage) -> None:
    stack = outage.stack
    stranger = await stack.new_key("stranger-" + secrets.token_hex(3))
    outage.stop_postgres()
    assert stack.stop("gateway") == 0
    stack.start("gateway")  # a gateway that starts while PostgreSQL is away

    answer = await eventually(lambda: ready(stack), timeout=30, message="gateway ready without PostgreSQL")
    assert answer.json() == {"status": "degraded", "checks": {"nats": True, "postgres": False}}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ops_ports['gateway']}") as ops:
        assert (await ops.get("/readyz")).json()["checks"] == {"nats": True, "postgres": False}
    assert await read_model_gauge(stack) == 0

    async with stack.client(timeout=10) as client:
        accepted = await submit(client, market("0.2"))
        order_id = accepted["orderId"]
        messages, code = await stream(stack, order_id)
        assert messages[-1]["status"] == "confirmed" and code == 1000

        # One order, its status path and its events: folded from the log, the read model's shape.
        from_log = await client.get(f"/api/orders/{order_id}")
        assert from_log.status_code == 200 and from_log.json()["status"] == "confirmed"
        assert (await client.get(f"/api/orders/status/{order_id}")).json() == from_log.json()
        events_from_log = await client.get(f"/api/orders/{order_id}/events")
        assert events_from_log.status_code == 200
        assert events_from_log.json()["events"] == messages[1:]

        # Another account's order is still one that does not exist.
        async with stack.client(key=stranger, timeout=10) as other:
            for path in (f"/api/orders/{order_id}", f"/api/orders/status/{order_id}", f"/api/orders/{order_id}/events"):
                assert (await other.get(path)).status_code == 404, path

        # What only the read model can answer: a quick 503 that says when to retry.
        for path in ("/api/orders", "/api/orders?status=confirmed", "/api/orders/no-such-order"):
            started = time.perf_counter()
            refused = await client.get(path)
            elapsed = time.perf_counter() - started
            assert refused.status_code == 503, (path, refused.text)
            assert elapsed < 1.0, (path, elapsed)
            assert int(refused.headers["Retry-After"]) >= 1
            body = refused.json()
            assert body["error"] == "unavailable" and "read model" in body["detail"]

        # PostgreSQL comes back: the same gateway reads it again and the projector catches up.
        outage.start_postgres()

        async def listed() -> dict | None:
            page = await client.get("/api/orders")
            if page.status_code != 200:
                return None
            views = {view["orderId"]: view for view in page.json()["orders"]}
            view = views.get(order_id)
            return view if view is not None and view["lastSeq"] == from_log.json()["lastSeq"] else None

        view = await eventually(listed, timeout=40, interval=0.2, message="the order listed, fully projected")
        assert view == from_log.json()  # the read model's view is the one the log gave
        assert (await client.get(f"/api/orders/{order_id}")).json() == from_log.json()
        assert (await client.get(f"/api/orders/{order_id}/events")).json() == events_from_log.json()

    answer = await eventually(lambda: ready(stack), timeout=10, message="gateway ready")
    assert answer.json() == {"status": "ok", "checks": {"nats": True, "postgres": True}}
    assert await read_model_gauge(stack) == 1
