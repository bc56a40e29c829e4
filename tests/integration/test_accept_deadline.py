"""Submissions whose append is not acknowledged in time, settled from the log itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import msgspec
import nats
import pytest

from services.gateway.errors import ApiError
from services.gateway.submit import AcceptTiming, submit
from shared.clock import SystemClock
from shared.emit import Emitter
from shared.eventlog import EventLog
from shared.ids import Ids
from shared.topology import Topology
from tests.helpers import eventually
from tests.kit import SPEC

TIMING = AcceptTiming(deadline_ms=500, clock_margin_ms=100, check_timeout_ms=3_000)


class Relay:
    """A TCP relay to nats-server whose answers to the client can be held back (a slow network)."""

    def __init__(self, upstream: str):
        url = urlparse(upstream)
        self._upstream = (url.hostname, url.port)
        self.answers = asyncio.Event()  # set: the server's answers flow to the client
        self.answers.set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"nats://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        for pump in (self._pump(reader, up_writer, None), self._pump(up_reader, writer, self.answers)):
            task = asyncio.ensure_future(pump)
            self._tasks.add(task)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event | None) -> None:
        try:
            while data := await src.read(65_536):
                if gate is not None:
                    await gate.wait()
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()


@pytest.fixture
async def relay(nats_url: str) -> AsyncIterator[Relay]:
    relay = Relay(nats_url)
    relay.url = await relay.start()
    yield relay
    await relay.close()


async def gateway_emitter(url: str, topology: Topology):
    nc = await nats.connect(url)
    clock = SystemClock()
    return nc, Emitter(EventLog(nc, nc.jetstream(), topology), Ids(clock, secret=b"order-id secret"), clock)


async def test_an_order_stored_in_time_whose_acknowledgement_is_lost_is_accepted(jetstream, relay, caplog):
    nc0, js0, topology = jetstream
    nc, emitter = await gateway_emitter(relay.url, topology)
    spec = msgspec.structs.replace(SPEC, client_order_id="lost-ack")
    order_id = emitter.ids.keyed_order_id(spec.account, "lost-ack")
    server_view = EventLog(nc0, js0, topology)
    caplog.set_level(logging.WARNING, logger="services.gateway.submit")
    try:
        relay.answers.clear()
        submitting = asyncio.ensure_future(submit(spec, emitter=emitter, timing=TIMING))
        stored = (await eventually(lambda: server_view.read(order_id), message="order stored"))[0]
        assert stored.stored_at <= stored.event.accept_by  # in time: the order exists
        await eventually(lambda: "append unconfirmed by the deadline" in caplog.text, message="ack given up")
        relay.answers.set()  # the acknowledgement arrives too late; the gateway's read of the log does not
        result = await submitting
    finally:
        await nc.close()
    assert result.created and result.state.order_id == order_id and result.state.status == "pending"
    assert [s.event.event_id for s in await server_view.read(order_id)] == [stored.event.event_id]


async def test_a_log_no_stream_answers_for_is_a_503_naming_the_order(nats_url, namespace):
    nc, emitter = await gateway_emitter(nats_url, Topology(namespace=namespace))  # no streams provisioned
    try:
        with pytest.raises(ApiError) as refused:
            await submit(msgspec.structs.replace(SPEC, client_order_id="nobody"), emitter=emitter, timing=TIMING)
    finally:
        await nc.close()
    error = refused.value
    assert error.status == 503 and error.error == "unavailable" and error.headers == {"Retry-After": "1"}
    assert error.extra == {"orderId": emitter.ids.keyed_order_id(SPEC.account, "nobody")}
