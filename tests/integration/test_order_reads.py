"""Where a read of one order comes from: the read model while it answers; the event log
while the read model is away or behind; the read model alone for an order the log no
longer holds (retention). Ownership is the same whichever answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from litestar.datastructures import State

from services.gateway.errors import ApiError
from services.gateway.reads import ReadModel, ReadModelUnavailable, open_pool
from services.gateway.routes import load_order
from services.projector import store
from services.projector.migrations import migrate
from services.projector.service import Projector
from shared.eventlog import EventLog
from shared.topology import Topology
from tests.helpers import free_port
from tests.kit import HAPPY, history


@dataclass
class Sources:
    log: EventLog
    reads: ReadModel  # answers
    away: ReadModel  # a PostgreSQL that is not there
    projector: Projector
    topology: Topology

    def state(self, reads: ReadModel) -> State:
        return State({"reads": reads, "log": self.log})

    async def append(self, order_id: str, *, project: bool) -> None:
        position = 0
        for event in history(*HAPPY, order_id=order_id):
            position = (await self.log.append(event, expected_stream_seq=position)).stream_seq
        if project:
            stored = await self.log.read(order_id)
            await self.projector.apply([(s.stream_seq, s.event) for s in stored])


@pytest.fixture
async def sources(jetstream, database_url: str, pg_schema: str) -> AsyncIterator[Sources]:
    nc, js, topology = jetstream
    writer = await store.create_pool(database_url, pg_schema)
    async with writer.acquire() as conn:
        await migrate(conn, pg_schema)
    reads = ReadModel(await open_pool(database_url, pg_schema, size=2), timeout_s=0.5)
    away = ReadModel(await open_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/engine", "public"), timeout_s=0.5)
    try:
        yield Sources(EventLog(nc, js, topology), reads, away, Projector(writer, nc, js, topology, pg_schema), topology)
    finally:
        for model in (reads, away):
            await model.close()
        await writer.close()


async def assert_hidden(state: State, order_id: str) -> None:
    with pytest.raises(ApiError) as refused:
        await load_order(state, order_id, "stranger")
    assert refused.value.status == 404


async def test_an_order_the_log_no_longer_holds_is_read_from_the_read_model(sources: Sources, jetstream) -> None:
    _, js, topology = jetstream
    await sources.append("o-kept", project=True)
    expected = (await sources.log.load("o-kept")).state
    await js.purge_stream(topology.orders_stream, subject=topology.order_wildcard("o-kept"))
    assert await sources.log.read("o-kept") == []
    state = sources.state(sources.reads)
    found = await load_order(state, "o-kept", "trader")
    assert found == expected and found.status == "confirmed"
    await assert_hidden(state, "o-kept")


async def test_while_the_read_model_is_away_an_order_is_folded_from_the_log(sources: Sources) -> None:
    await sources.append("o-live", project=False)
    state = sources.state(sources.away)
    found = await load_order(state, "o-live", "trader")
    assert found == (await sources.log.load("o-live")).state and found.status == "confirmed"
    await assert_hidden(state, "o-live")
    # Neither holds it: it may exist all the same, so no 404 while the read model is away.
    with pytest.raises(ReadModelUnavailable):
        await load_order(state, "o-unknown", "trader")


async def test_an_order_the_read_model_has_not_caught_up_with_is_read_from_the_log(sources: Sources) -> None:
    await sources.append("o-new", project=False)
    state = sources.state(sources.reads)
    assert await sources.reads.order("o-new") is None
    assert await load_order(state, "o-new", "trader") == (await sources.log.load("o-new")).state
    await assert_hidden(state, "o-new")
    with pytest.raises(ApiError) as unknown:
        await load_order(state, "o-unknown", "trader")
    assert unknown.value.status == 404
