"""One trace per order through gateway, router, executor and projector, and logs that name it.

The services export over OTLP/HTTP to a receiver in the test, as they would to a collector,
with a short batch delay so spans arrive within a fraction of a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from shared.market.model import Market
from tests.e2e.client import market, submit, wait_terminal
from tests.e2e.conftest import E2E_ENV, Stack, start_stack, stop_stack
from tests.e2e.foresight import IMMUNE_SLIPPAGE_BPS
from tests.e2e.market_lookahead import next_crossing, slot_clock
from tests.e2e.otlp import ReceivedSpan, SpanReceiver
from tests.e2e.test_resting_orders import limit_body
from tests.helpers import eventually

SLOT_MS = int(E2E_ENV["SLOT_MS"])


@pytest.fixture(scope="module")
def receiver() -> Iterator[SpanReceiver]:
    running = SpanReceiver()
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
async def stack(database_url, stack_credentials, tmp_path_factory, receiver) -> AsyncIterator[Stack]:
    traced = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        # Every fired order reaches the one outcome its test expects.
        "CHAIN_FAILURE_RATE": "0",
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
    }
    running = await start_stack(database_url, stack_credentials, tmp_path_factory.mktemp("stack"), traced)
    try:
        yield running
    finally:
        await stop_stack(running)


def one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, (service, name, found)
    return found[0]


def trace_of(receiver: SpanReceiver, order_id: str, *needed: tuple[str, str]) -> list[ReceivedSpan]:
    """The order's spans once every (service, name) in `needed` and a projector span are there."""
    spans = receiver.of_order(order_id)
    present = {(s.service, s.name) for s in spans}
    assert set(needed) <= present, present
    assert any(s.service == "projector" for s in spans), present
    return spans


async def confirmed_trace(receiver: SpanReceiver, order_id: str, needed: list[tuple[str, str]]) -> list[ReceivedSpan]:
    """The order's spans once `needed` are exported and the projector wrote its confirmation."""
    def projected() -> list[ReceivedSpan]:
        spans = trace_of(receiver, order_id, *needed)
        executor = one(spans, "executor", "handle OrderRouted")
        assert any(s.service == "projector" and s.parent_id == executor.span_id for s in spans)
        return spans

    return await eventually(projected, timeout=20, message="the order's spans exported")


def log_lines(stack: Stack, name: str) -> list[dict]:
    lines = []
    for line in (stack.logs / f"{name}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_a_market_order_is_one_trace_from_gateway_through_router_and_executor_to_projector(stack, receiver):
    async with stack.client(timeout=30) as client:
        order = await submit(client, market())
        assert (await wait_terminal(client, order["orderId"])).status == "confirmed"
    order_id = order["orderId"]
    needed = [("gateway", "submit order"), ("router", "handle OrderAccepted"), ("executor", "handle OrderRouted")]
    spans = await confirmed_trace(receiver, order_id, needed)
    submitted = one(spans, "gateway", "submit order")
    routed = one(spans, "router", "handle OrderAccepted")
    executed = one(spans, "executor", "handle OrderRouted")
    known = receiver.by_id()
    assert {s.trace_id for s in spans} == {submitted.trace_id}
    assert submitted.parent_id == "" and routed.parent_id == submitted.span_id
    assert executed.parent_id == routed.span_id
    for projected in (s for s in spans if s.service == "projector"):
        assert projected.name == "project order" and known[projected.parent_id].trace_id == submitted.trace_id
    assert all(s.attributes.get("order.type") == "market" and not s.error for s in spans)
    gateway_lines = [line for line in log_lines(stack, "gateway") if line.get("orderId") == order_id]
    assert [(line["msg"], line["traceId"], line["orderType"], line["pair"], line["account"])
            for line in gateway_lines] == [("order accepted", submitted.trace_id, "market", "SOL-USDC", "e2e")]
    routed_lines = [line for line in log_lines(stack, "router") if line.get("orderId") == order_id]
    assert routed_lines and all(line.get("traceId") == submitted.trace_id for line in routed_lines)


async def test_a_limit_order_that_rests_then_fires_is_one_trace_from_acceptance_to_confirmation(stack, receiver):
    crossing = await next_crossing(Market(42), slot_clock(SLOT_MS), quiet_slots=30, within_slots=300, hold_slots=40)
    async with stack.client(timeout=30) as client:
        order = await submit(client, limit_body(crossing))
        assert (await wait_terminal(client, order["orderId"], timeout=60)).status == "confirmed"
    order_id = order["orderId"]
    needed = [("gateway", "submit order"), ("router", "handle OrderAccepted"), ("router", "fire resting order"),
              ("executor", "handle OrderRouted")]
    spans = await confirmed_trace(receiver, order_id, needed)
    submitted = one(spans, "gateway", "submit order")
    fired = [s for s in spans if s.name == "fire resting order"]
    executed = one(spans, "executor", "handle OrderRouted")
    assert {s.trace_id for s in spans} == {submitted.trace_id}
    assert all(s.parent_id == submitted.span_id for s in fired)
    assert executed.parent_id in {s.span_id for s in fired}
    assert all(s.attributes.get("order.type") == "limit" for s in spans)


async def test_a_cancelled_resting_order_has_its_cancel_in_its_own_trace(stack, receiver):
    body = {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "limitPrice": "100000",
            "slippageBps": IMMUNE_SLIPPAGE_BPS}
    async with stack.client(timeout=30) as client:
        order = await submit(client, body)
        order_id = order["orderId"]
        await eventually(lambda: _resting(client, order_id), message="order resting")
        cancelled = await client.delete(f"/api/orders/{order_id}")
        assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True

    def cancel_traced() -> list[ReceivedSpan]:
        spans = trace_of(receiver, order_id, ("gateway", "submit order"), ("gateway", "cancel order"),
                         ("router", "remove resting order"))
        cancel = one(spans, "gateway", "cancel order")
        assert any(s.service == "projector" and s.parent_id == cancel.span_id for s in spans)
        return spans

    spans = await eventually(cancel_traced, timeout=20, message="the cancel's spans exported")
    submitted = one(spans, "gateway", "submit order")
    cancel = one(spans, "gateway", "cancel order")
    removed = one(spans, "router", "remove resting order")
    assert {s.trace_id for s in spans} == {submitted.trace_id}
    assert cancel.parent_id == submitted.span_id and removed.parent_id == cancel.span_id
    assert not cancel.error and cancel.attributes["order.type"] == "limit"


async def test_a_resting_order_that_expires_has_its_expiry_in_its_own_trace(stack, receiver):
    body = {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "limitPrice": "100000",
            "timeInForce": "GTD", "expiresAt": int(time.time() * 1000) + 1500}
    async with stack.client(timeout=30) as client:
        order = await submit(client, body)
        assert (await wait_terminal(client, order["orderId"])).status == "expired"
    order_id = order["orderId"]

    def expiry_traced() -> list[ReceivedSpan]:
        spans = trace_of(receiver, order_id, ("gateway", "submit order"), ("router", "expire resting order"))
        expiry = one(spans, "router", "expire resting order")
        assert any(s.service == "projector" and s.parent_id == expiry.span_id for s in spans)
        return spans

    spans = await eventually(expiry_traced, timeout=20, message="the expiry's spans exported")
    submitted = one(spans, "gateway", "submit order")
    assert {s.trace_id for s in spans} == {submitted.trace_id}
    assert one(spans, "router", "expire resting order").parent_id == submitted.span_id


async def test_a_refused_request_is_logged_with_status_code_field_and_path_and_never_the_key(stack):
    async with stack.client(timeout=30) as client:
        refused = await client.post("/api/orders/execute", json=market(amount="-1"))
    assert refused.status_code == 400

    def refusal() -> dict:
        lines = [line for line in log_lines(stack, "gateway") if line.get("msg") == "request refused"]
        assert lines
        return lines[-1]

    line = await eventually(refusal, message="the refusal logged")
    assert (line["level"], line["status"], line["code"], line["field"], line["path"]) == (
        "info", 400, refused.json()["error"], "amount", "/api/orders/execute")
    assert stack.api_key not in (stack.logs / "gateway.log").read_text()


async def _resting(client, order_id: str) -> bool:
    return (await client.get(f"/api/orders/{order_id}")).json()["status"] == "open"
