"""The typed client and the `engine` CLI against the four services as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from engine_client import ApiError, EngineClient, LimitOrder, MarketOrder, SniperOrder
from tests.e2e.client import engine_of
from tests.e2e.conftest import own_stack
from tests.e2e.foresight import IMMUNE_SLIPPAGE_BPS
from tests.helpers import CuttableRelay

# Every market order here must confirm: no transient chain failures.
stack = own_stack({"CHAIN_FAILURE_RATE": "0"})

ENGINE = shutil.which("engine", path=str(Path(sys.executable).parent))


@pytest.fixture
async def engine(stack):
    async with engine_of(stack) as client:
        yield client


def market() -> MarketOrder:
    return MarketOrder(token_in="SOL", token_out="USDC", amount=Decimal("0.2"), slippage_bps=IMMUNE_SLIPPAGE_BPS)


def resting_limit() -> LimitOrder:
    """A GTC limit order no price reaches: it rests until cancelled."""
    return LimitOrder(token_in="SOL", token_out="USDC", amount=Decimal("1"), limit_price=Decimal("1000000"))


async def test_each_order_type_is_accepted_with_a_client_order_id_of_its_own(engine):
    orders = [market(), resting_limit(),
              LimitOrder(token_in="SOL", token_out="USDC", amount=Decimal("1"), limit_price=Decimal("1000000"),
                         time_in_force="IOC"),
              SniperOrder(token_in="USDC", token_out="PUMP", amount=Decimal("25"), max_price=Decimal("0.0025"),
                          slippage_bps=300)]
    answers = [await engine.submit(order) for order in orders]
    assert [(a.order_type, a.status, a.created) for a in answers] == [
        ("market", "pending", True), ("limit", "pending", True), ("limit", "pending", True), ("sniper", "pending", True)]
    assert all(uuid.UUID(a.client_order_id) for a in answers) and len({a.order_id for a in answers}) == 4


async def test_submitting_the_same_order_again_answers_the_order_already_made(engine):
    order = market()
    first = await engine.submit(order)
    again = await engine.submit(order)
    assert (again.order_id, again.created, first.created) == (first.order_id, False, True)


async def test_watching_a_market_order_yields_every_event_in_order_up_to_confirmed(engine):
    accepted = await engine.submit(market())
    events = [event async for event in engine.watch(accepted.order_id)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert (events[0].event, events[-1].status, events[-1].progress) == ("OrderAccepted", "confirmed", 100)


async def test_a_watch_resumes_after_its_connection_drops_with_no_gap_and_no_duplicate(stack, engine):
    order = await engine.submit(resting_limit())
    async with CuttableRelay(stack.base_url.removeprefix("http://")) as relay:
        async with EngineClient(f"http://{relay.address}", stack.api_key, retries=50, backoff=0.05) as relayed:
            seen = []
            async for event in relayed.watch(order.order_id):
                seen.append(event)
                if event.status == "open":  # resting: drop the stream, and cancel while it is away
                    relay.cut()
                    assert (await engine.cancel(order.order_id)).cancelled
    assert [(e.seq, e.status) for e in seen] == [(1, "pending"), (2, "open"), (3, "cancelled")]
    assert relay.connections == 2, "the cancellation came through a second connection"


async def test_following_quotes_reconnects_after_its_connection_drops(stack):
    async with CuttableRelay(stack.base_url.removeprefix("http://")) as relay:
        async with EngineClient(f"http://{relay.address}", stack.api_key, retries=50, backoff=0.05) as relayed:
            venues: list[set[str]] = [set(), set()]
            async with contextlib.aclosing(relayed.follow_quotes("SOL-USDC")) as quotes:
                async for quote in quotes:
                    venues[relay.connections - 1].add(quote.venue)
                    if relay.connections == 1 and len(venues[0]) == 2:
                        relay.cut()  # each venue seen once: drop the stream
                    if relay.connections == 2 and len(venues[1]) == 2:
                        break
    assert venues == [{"raydium-cpmm", "meteora-dlmm"}] * 2


async def test_a_refused_order_raises_with_the_status_code_and_field(engine):
    order = MarketOrder(token_in="SOL", token_out="USDC", amount=Decimal("1.0000000001"))
    with pytest.raises(ApiError) as refused:
        await engine.submit(order)
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "invalid_field", "amount")


async def test_watching_an_order_that_does_not_exist_raises_not_found(engine):
    with pytest.raises(ApiError) as refused:
        [event async for event in engine.watch("no-such-order")]
    assert (refused.value.status, refused.value.code, refused.value.field) == (404, "order_not_found", "orderId")


async def test_a_resting_limit_order_is_cancelled(engine):
    order = await engine.submit(resting_limit())
    async with contextlib.aclosing(engine.watch(order.order_id)) as events:
        async for event in events:
            if event.status == "open":
                break
    cancelled = await engine.cancel(order.order_id)
    assert (cancelled.cancelled, cancelled.status, (await engine.get(order.order_id)).status) == (
        True, "cancelled", "cancelled")


async def run_engine(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    assert ENGINE, f"no `engine` script beside {sys.executable}: pip install -e . installs it"
    proc = await asyncio.create_subprocess_exec(
        ENGINE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def cli(stack, *args: str) -> tuple[int, str, str]:
    return await run_engine(*args, "--url", stack.base_url, "--key", stack.api_key, "--json")


async def test_the_cli_submits_a_market_order_and_watches_it_to_confirmed_as_json(stack):
    code, out, err = await cli(stack, "submit", "market", "SOL", "USDC", "0.2", "--slippage-bps", str(IMMUNE_SLIPPAGE_BPS))
    assert code == 0, err
    order_id = json.loads(out)["orderId"]
    code, out, err = await cli(stack, "watch", order_id)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [m["seq"] for m in lines] == list(range(1, len(lines) + 1)) and lines[-1]["status"] == "confirmed"


async def test_the_cli_reports_a_refusal_with_its_field_and_exit_status_3(stack):
    code, out, err = await cli(stack, "submit", "market", "SOL", "SOL", "1")
    assert (code, out, json.loads(err)["field"], json.loads(err)["status"]) == (3, "", "tokenOut", 400)


async def test_the_cli_lists_keys_with_the_key_tooling(stack):
    env = {**os.environ, **stack.admin_env, "NATS_URL": stack.env["NATS_URL"],
           "ENGINE_NAMESPACE": stack.env["ENGINE_NAMESPACE"]}
    code, out, err = await run_engine("keys", "list", "--json", env=env)
    assert code == 0, err
    assert "e2e" in [record["account"] for record in json.loads(out)]
