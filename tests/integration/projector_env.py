"""A projector's world for integration tests: a namespace's log, a schema's read model, and waits on them."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import asyncpg
import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from services.projector import store
from services.projector.fold import Current
from services.projector.migrations import migrate
from services.projector.service import Projector
from shared import events as ev
from shared.eventlog import EventLog
from shared.orders import OrderState
from shared.topology import Topology
from tools.setup import provision_nats


#: How long a test waits for the projector to catch up.
PROJECTION_WAIT_S = 20.0

_REJECTS = "select order_id, seq, stream_seq, event_type, reason from projector_rejects order by order_id, seq"


@dataclass
class Env:
    nc: Client
    js: JetStreamContext
    topology: Topology
    pool: asyncpg.Pool
    schema: str
    log: EventLog
    database_url: str
    nats_url: str
    positions: dict[str, int] = field(default_factory=dict)  # order id -> its last stream seq

    def projector(self, **kwargs: Any) -> Projector:
        return Projector(self.pool, self.nc, self.js, self.topology, self.schema, **kwargs)

    async def append(self, items: list[tuple[int, ev.OrderEvent]] | list[ev.OrderEvent]) -> None:
        """Append events in the given order, each guarded by its order's last stream seq."""
        for item in items:
            event = item[1] if isinstance(item, tuple) else item
            appended = await self.log.append(event, expected_stream_seq=self.positions.get(event.order_id, 0))
            self.positions[event.order_id] = appended.stream_seq

    async def last_seq(self) -> int:
        return (await self.js.stream_info(self.topology.orders_stream)).state.last_seq

    async def caught_up(self) -> bool:
        """Every logged event is projected or rejected (the position alone is the highest one applied)."""
        async with self.pool.acquire() as conn:
            position = await store.position(conn)
            events = await conn.fetchval("select count(*) from order_events")
            rejects = await conn.fetchval("select count(*) from projector_rejects")
        state = (await self.js.stream_info(self.topology.orders_stream)).state
        return position == state.last_seq and events + rejects == state.messages

    async def tables(self) -> dict[str, list[dict]]:
        """Every row of the read model, in a stable order (times of writing left out)."""
        async with self.pool.acquire() as conn:
            return {
                "orders": [dict(r) for r in await conn.fetch("select * from orders order by order_id")],
                "order_events": [
                    dict(r) for r in await conn.fetch("select * from order_events order by order_id, seq")
                ],
                "positions": [dict(r) for r in await conn.fetch("select name, stream_seq from projector_positions")],
                "rejects": [dict(r) for r in await conn.fetch(_REJECTS)],
            }


@pytest.fixture
async def env(nats_url: str, database_url: str, namespace: str, pg_schema: str) -> AsyncIterator[Env]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    topology = Topology(namespace=namespace)
    await provision_nats(js, topology)
    pool = await store.create_pool(database_url, pg_schema)
    async with pool.acquire() as conn:
        await migrate(conn, pg_schema)
    try:
        yield Env(nc, js, topology, pool, pg_schema, EventLog(nc, js, topology), database_url, nats_url)
    finally:
        await pool.close()
        for stream in (topology.orders_stream, topology.quotes_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        await nc.close()


@contextlib.asynccontextmanager
async def running(projector: Projector) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def assert_read_model_is_the_fold_of_the_log(env: Env, order_ids: set[str]) -> None:
    tables = await env.tables()
    assert {r["order_id"] for r in tables["orders"]} == order_ids
    events_by_order: dict[str, list[dict]] = {}
    for row in tables["order_events"]:
        events_by_order.setdefault(row["order_id"], []).append(row)
    for row in tables["orders"]:
        history = await env.log.load(row["order_id"])
        assert history.state is not None
        assert msgspec.json.decode(row["state"], type=OrderState) == history.state
        expected = store.order_record(
            row["order_id"], Current(state=history.state, last_stream_seq=history.last_stream_seq)
        )
        assert tuple(row.values())[:20] == expected[:20]
        logged = [
            (s.event.seq, s.stream_seq, ev.event_type(s.event), store.timestamp(s.event.occurred_at), s.event)
            for s in history.events
        ]
        projected = [
            (e["seq"], e["stream_seq"], e["event_type"], e["occurred_at"], ev.decode(e["payload"].encode()))
            for e in events_by_order[row["order_id"]]
        ]
        assert projected == logged
    assert tables["positions"] == [{"name": "projector", "stream_seq": await env.last_seq()}]
