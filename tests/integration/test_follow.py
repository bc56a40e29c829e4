"""The follower against real nats-server: filtered by the server, history then live, caught up once."""

import asyncio

from shared import events as ev
from shared.eventlog import EventLog
from shared.follow import Follower
from tests.helpers import eventually
from tests.kit import history


async def test_a_follower_reads_only_its_event_types_from_a_position_on_then_follows_and_says_when_caught_up(jetstream):
    nc, js, topology = jetstream
    log = EventLog(nc, js, topology)
    position = 0
    for event in history(ev.OrderAccepted, ev.RoutingStarted, ev.OrderRouted, order_id="w1"):
        position = (await log.append(event, expected_stream_seq=position)).stream_seq
    seen: list[tuple[int, str]] = []
    caught_up_with: list[int] = []

    async def record(msg) -> None:
        seen.append((msg.metadata.sequence.stream, type(ev.decode(msg.data)).__name__))

    subjects = topology.event_filter("OrderAccepted", "OrderRouted")
    follower = Follower(js, topology.orders_stream, subjects, record, on_caught_up=lambda: caught_up_with.append(len(seen)))
    await follower.start()
    try:
        await asyncio.wait_for(follower.caught_up.wait(), 5)
        assert seen == [(1, "OrderAccepted"), (3, "OrderRouted")] and caught_up_with == [2]
        await log.append(history(ev.OrderAccepted, order_id="w2")[0], expected_stream_seq=0)
        await eventually(lambda: len(seen) == 3, message="a new event followed")
        assert seen[-1] == (4, "OrderAccepted") and follower.position == 4 and caught_up_with == [2]
    finally:
        await follower.stop()
    await follower.stop()  # twice is harmless

    # From a position past every matching event: nothing to read, caught up at once.
    idle = Follower(js, topology.orders_stream, subjects, record, start_seq=5)
    await idle.start()
    try:
        assert idle.caught_up.is_set() and idle.position == 0
    finally:
        await idle.stop()
