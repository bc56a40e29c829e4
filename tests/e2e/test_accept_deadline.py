"""A 5xx never hides an order: a submission the log does not confirm in time never executes.

The stack's nats-server is frozen (SIGSTOP) while an order is submitted, so the gateway's
publish sits in the socket, unacknowledged, past the order's acceptance deadline. The
gateway answers 503 with the order id; once the server is resumed (SIGCONT) it stores the
publish, after the deadline, and the router refuses the order before routing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.client import market, submit, wait_terminal
from tests.e2e.conftest import own_stack, Stack
from tests.helpers import eventually

# A short deadline and a check window wide enough for a test to resume the server in it.
ACCEPT_ENV = {
    "ACCEPT_TIMEOUT_MS": "500",
    "ACCEPT_CLOCK_MARGIN_MS": "200",
    "ACCEPT_CHECK_TIMEOUT_MS": "1500",
    "KEY_CACHE_TTL_S": "600",  # the key, once seen, authenticates without NATS
    "CHAIN_FAILURE_RATE": "0",
}


deadline_stack = own_stack(ACCEPT_ENV)


@pytest.fixture
async def client(deadline_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with deadline_stack.client(timeout=30) as client:
        assert (await client.get("/api/orders?limit=1")).status_code == 200  # the key is cached now
        yield client


@contextlib.contextmanager
def frozen(stack: Stack) -> Iterator[None]:
    os.kill(stack.nats.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(stack.nats.pid, signal.SIGCONT)


def logged_deadline(stack: Stack, order_id: str) -> int | None:
    """The acceptBy the gateway logged when it stopped waiting for the log's acknowledgement."""
    text = (stack.logs / "gateway.log").read_text(errors="replace")
    found = re.search(rf"append unconfirmed by the deadline.*orderId={order_id}\b.*acceptBy=(\d+)", text)
    return int(found.group(1)) if found else None


async def refused(client: httpx.AsyncClient, order_id: str) -> None:
    """Until the order failed for missing its deadline, with only its two events."""

    async def failed() -> bool:
        view = (await client.get(f"/api/orders/{order_id}")).json()
        assert view.get("status") == "failed" and view["failureCode"] == "accept_deadline_missed", view
        events = (await client.get(f"/api/orders/{order_id}/events")).json()["events"]
        # Failed is terminal: nothing can follow, so no route, transaction or executor step ever will.
        assert [e["event"] for e in events] == ["OrderAccepted", "OrderFailed"], events
        return True

    await eventually(failed, timeout=15, message=f"order {order_id} refused")


async def test_an_order_stored_after_the_gateway_gave_up_is_answered_503_and_refused(deadline_stack, client):
    stack = deadline_stack
    order_id = await stack.keyed_order_id("late-1")
    with frozen(stack):
        posting = asyncio.ensure_future(client.post("/api/orders/execute", json=market(clientOrderId="late-1")))
        accept_by = await eventually(lambda: logged_deadline(stack, order_id), message="gateway gave up waiting")
        # Resumed once the deadline has passed: the server stores the buffered publish late,
        # then answers the gateway's own read of the log.
        await eventually(lambda: time.time_ns() // 1_000_000 > accept_by, message="deadline passed")
    response = await posting
    assert_unaccepted(response, "not_accepted", order_id)
    await refused(client, order_id)

    # The retry the 503 asks for answers the refused order; a new key submits anew.
    again = await client.post("/api/orders/execute", json=market(clientOrderId="late-1"))
    assert again.status_code == 200 and again.json()["orderId"] == order_id
    assert again.json()["status"] == "failed" and again.json()["failureCode"] == "accept_deadline_missed"
    fresh = await submit(client, market(clientOrderId="late-2"))
    assert (await wait_terminal(client, fresh["orderId"])).status == "confirmed"


def assert_unaccepted(response, error: str, order_id: str) -> None:
    """A 503 that names the order it did not confirm, and when to ask again."""
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    body = response.json()
    assert body["error"] == error and body["orderId"] == order_id, body


async def test_an_order_the_log_cannot_be_asked_about_is_answered_503_and_refused_when_it_lands(
    deadline_stack, client
):
    stack = deadline_stack
    order_id = await stack.keyed_order_id("frozen-1")
    with frozen(stack):
        response = await client.post("/api/orders/execute", json=market(clientOrderId="frozen-1"))
    assert_unaccepted(response, "unavailable", order_id)
    await refused(client, order_id)
    again = await client.post("/api/orders/execute", json=market(clientOrderId="frozen-1"))
    assert again.status_code == 200 and again.json()["failureCode"] == "accept_deadline_missed"
