"""The executor never executes an order twice: not after a crash, not with two replicas."""

import asyncio

import pytest

from services.executor.build import BuildParams, Wallet
from services.executor.driver import Executor
from shared import events as ev
from shared.chain import ChainConfig, JetStreamChainStore, SettleOutcome, SimulatedChain, SlotClock
from shared.clock import SystemClock
from shared.consumer import Consumer
from shared.durables import order_spec
from shared.emit import Emitter
from shared.eventlog import EventLog
from shared.ids import Ids
from tests.helpers import eventually
from tests.kit import history

ZERO = ChainConfig(seed="test-chain", confirm_delay_ms=(0, 0), rpc_latency_ms=(0, 0), blockhash_ttl_slots=50)


class Crash(Exception):
    pass


class CrashingOnceEmitter(Emitter):
    """Dies right after the transaction was sent and before the send is recorded."""

    crashed = False

    async def append(self, hist, cls, **fields):
        if cls is ev.TransactionSubmitted and not self.crashed:
            type(self).crashed = True
            raise Crash("executor died between submit and record")
        return await super().append(hist, cls, **fields)


def settle(swap, slot):
    return SettleOutcome(ok=True, amount_out=swap.min_amount_out + 10)


@pytest.fixture
def env(jetstream):
    nc, js, topology = jetstream
    return nc, js, topology, EventLog(nc, js, topology), SystemClock()


async def routed_order(log: EventLog, order_id: str) -> None:
    last = 0
    for event in history(ev.OrderAccepted, ev.RoutingStarted, ev.OrderRouted, order_id=order_id):
        last = (await log.append(event, expected_stream_seq=last)).stream_seq


async def new_executor(js, topology, log, clock, emitter_cls=Emitter) -> Executor:
    """A freshly started executor: its own chain client and store handle, nothing in memory."""
    store = await JetStreamChainStore.open(js, topology.chain_bucket)
    chain = SimulatedChain(store, SlotClock(genesis_ms=0, slot_ms=50, now_ms=clock.now_ms), ZERO, settle)
    return Executor(
        emitter_cls(log, Ids(clock), clock), chain, Wallet.from_seed("test"), BuildParams(200_000, 1_000),
        backoff_base_ms=10,
    )


async def chain_transactions(js, topology) -> list[str]:
    kv = await js.key_value(topology.chain_bucket)
    try:
        return await kv.keys()
    except Exception:  # no keys yet
        return []


async def test_a_crash_between_submit_and_record_is_recovered_from_the_chain_not_resent(env):
    nc, js, topology, log, clock = env
    await routed_order(log, "crash1")
    CrashingOnceEmitter.crashed = False
    crashing = await new_executor(js, topology, log, clock, CrashingOnceEmitter)
    spec = order_spec(topology, "executor", ack_wait=2.0)
    stop = asyncio.Event()
    consumer = Consumer(js, topology.orders_stream, spec, crashing.handle)
    task = asyncio.create_task(consumer.run(stop))
    try:
        # The first delivery dies after sending; JetStream redelivers and the retry recovers.
        await eventually(lambda: CrashingOnceEmitter.crashed, message="the executor crashed once")
        async def confirmed():
            return (await log.load("crash1")).state.status == "confirmed"
        await eventually(confirmed, timeout=15, message="order confirmed after redelivery")
    finally:
        stop.set()
        await task
    events = [s.event for s in (await log.load("crash1")).events]
    built = [e for e in events if isinstance(e, ev.TransactionBuilt)]
    submitted = [e for e in events if isinstance(e, ev.TransactionSubmitted)]
    assert len(built) == 1 and len(submitted) == 1
    assert submitted[0].already_processed, "the retry found the transaction on chain instead of sending it again"
    assert len(await chain_transactions(js, topology)) == 1


async def test_a_restarted_executor_resumes_an_order_it_left_mid_flight(env):
    nc, js, topology, log, clock = env
    await routed_order(log, "crash2")
    CrashingOnceEmitter.crashed = False
    first = await new_executor(js, topology, log, clock, CrashingOnceEmitter)
    with pytest.raises(Crash):
        await first.drive("crash2")
    assert (await log.load("crash2")).state.status == "building"
    restarted = await new_executor(js, topology, log, clock)
    await restarted.drive("crash2")
    state = (await log.load("crash2")).state
    assert state.status == "confirmed" and state.attempts == 1
    assert len(await chain_transactions(js, topology)) == 1


async def test_two_replicas_driving_the_same_orders_execute_each_once(env):
    nc, js, topology, log, clock = env
    orders = [f"race{n}" for n in range(10)]
    for order_id in orders:
        await routed_order(log, order_id)
    a = await new_executor(js, topology, log, clock)
    b = await new_executor(js, topology, log, clock)
    await asyncio.gather(*(x.drive(o) for o in orders for x in (a, b)))
    for order_id in orders:
        events = [s.event for s in (await log.load(order_id)).events]
        assert events[-1].__class__ is ev.OrderConfirmed
        assert sum(isinstance(e, ev.OrderConfirmed) for e in events) == 1
        assert sum(isinstance(e, ev.TransactionBuilt) for e in events) == 1
    assert len(await chain_transactions(js, topology)) == len(orders)
