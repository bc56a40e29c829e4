"""What actually happened, read from the three records: the log, the chain, the read model.

The chain's own ledger (the CHAIN key-value bucket, one record per accepted signature) is
the authority on execution: every transaction the executor builds carries a memo
`order:<orderId>:<attempt>`, so the landed transactions of each order can be counted there
without trusting the events that report them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import asyncpg
import msgspec
from nats.js.errors import NoKeysError

from services.executor.settings import ExecutorSettings
from services.executor.settle import settler
from shared import events as ev
from shared.chain import JetStreamChainStore, SimulatedChain, TxRecord
from shared.clock import SystemClock
from shared.market.model import Market
from shared.orders import IllegalTransition, OrderState, apply
from shared.settings import load
from shared.topology import Topology


@dataclass(frozen=True)
class ChainTx:
    signature: str
    order_id: str
    attempt: int
    state: str  # dropped | pending | confirmed | failed (failed: landed, the swap program refused)

    @property
    def landed(self) -> bool:
        return self.state in ("confirmed", "failed")


@dataclass
class LogOrder:
    events: list[ev.OrderEvent]

    @property
    def state(self) -> OrderState | None:
        """The state the events fold to, as far as the state machine accepts them (a gap stops it)."""
        state = None
        for event in self.events:
            try:
                state = apply(state, event)
            except IllegalTransition:
                break
        return state


async def read_log(nc, topology: Topology, timeout: float = 10.0) -> dict[str, LogOrder]:
    """Every event of the order stream, grouped by order, in stream order."""
    js = nc.jetstream()
    info = await js.stream_info(topology.orders_stream)
    orders: dict[str, LogOrder] = {}
    if info.state.messages == 0:
        return orders
    sub = await js.subscribe(topology.orders_subjects, ordered_consumer=True, stream=topology.orders_stream)
    try:
        while True:
            msg = await sub.next_msg(timeout=timeout)
            event = ev.decode(msg.data)
            orders.setdefault(event.order_id, LogOrder(events=[])).events.append(event)
            if msg.metadata.sequence.stream >= info.state.last_seq:
                return orders
    finally:
        await sub.unsubscribe()


async def read_chain(nc, topology: Topology, env: dict[str, str]) -> dict[str, list[ChainTx]]:
    """Every transaction the chain accepted, by the order its memo names, with its fate now."""
    js = nc.jetstream()
    kv = await js.key_value(topology.chain_bucket)
    settings = load(ExecutorSettings, env=env)
    chain = SimulatedChain(
        JetStreamChainStore(kv),
        settings.slot_clock(SystemClock()),
        settings.chain_config(),
        settler(Market(settings.sim_seed)),
    )
    try:
        keys = await kv.keys()
    except NoKeysError:
        keys = []
    out: dict[str, list[ChainTx]] = defaultdict(list)
    for key in keys:
        entry = await kv.get(key)
        record = msgspec.json.decode(entry.value, type=TxRecord)
        memo = next(str(ix.args["memo"]) for ix in record.transaction.message.instructions if ix.name == "Memo")
        _, order_id, attempt = memo.split(":")
        status = None if record.dropped else await chain.signature_status(record.transaction.signature)
        state = "dropped" if status is None else status.state
        out[order_id].append(ChainTx(record.transaction.signature, order_id, int(attempt), state))
    return dict(out)


@dataclass(frozen=True)
class ReadModel:
    events: dict[str, list[tuple[int, str, str]]]  # order -> [(seq, type, eventId)]
    orders: dict[str, tuple[str, int]]  # order -> (status, last_seq)


async def read_model(database_url: str, schema: str) -> ReadModel:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await conn.fetch(
            f"select order_id, seq, event_type, payload->>'eventId' as event_id "
            f'from "{schema}".order_events order by order_id, seq'
        )
        views = await conn.fetch(f'select order_id, status, last_seq from "{schema}".orders')
    finally:
        await conn.close()
    events: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for row in rows:
        events[row["order_id"]].append((row["seq"], row["event_type"], row["event_id"]))
    return ReadModel(events=dict(events), orders={r["order_id"]: (r["status"], r["last_seq"]) for r in views})


def read_model_differences(log: dict[str, LogOrder], model: ReadModel) -> list[str]:
    """Where the read model does not say what the log says (empty: equal)."""
    out = []
    for order_id, order in log.items():
        expected = [(e.seq, type(e).__name__, e.event_id) for e in order.events]
        if model.events.get(order_id) != expected:
            out.append(f"{order_id}: events {len(model.events.get(order_id, []))} rows, log {len(expected)}")
            continue
        state = order.state
        view = model.orders.get(order_id)
        if state is not None and view != (state.status, state.seq):
            out.append(f"{order_id}: read model {view}, log ({state.status!r}, {state.seq})")
    out += [f"{order_id}: in the read model, not in the log" for order_id in model.orders.keys() - log.keys()]
    return out


def seq_gaps(log: dict[str, LogOrder]) -> list[str]:
    """Orders whose per-order seq is not 1, 2, 3, ... in stream order."""
    out = []
    for order_id, order in log.items():
        seqs = [e.seq for e in order.events]
        if seqs != list(range(1, len(seqs) + 1)):
            out.append(f"{order_id}: seq {seqs}")
    return out
