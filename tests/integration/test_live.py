"""Order streams' live hub against a real nats-server.

Lost live messages, reconnects, slow consumers, the safety net's period, released watches.
"""

from __future__ import annotations

import asyncio

import nats.errors

from services.gateway.live import LiveHub
from shared.eventlog import EventLog
from shared.runtime import ConnectionListeners, connect_nats
from shared.settings import Common
from tests.helpers import CuttableRelay, eventually, republish_paused
from tests.unit.test_projector_fold import order_story



async def follow(hub: LiveHub, order_id: str, last_seq: int, seen: list[int]) -> None:
    """Watch `order_id`, noting each event's seq in `seen`, until the one with `last_seq`."""
    async for event in hub.watch(order_id):
        if event is not None:
            seen.append(event.seq)
            if event.seq == last_seq:
                return

async def test_a_watcher_sees_every_event_once_and_in_order_when_live_messages_are_lost(jetstream) -> None:
    nc, js, topology = jetstream
    log = EventLog(nc, js, topology)
    hub = LiveHub(nc, log, idle_check_s=0.2)
    story = order_story("o-lost", "retried")
    position = (await log.append(story[0], expected_stream_seq=0)).stream_seq
    seen: list[int] = []
    following = asyncio.create_task(follow(hub, "o-lost", story[-1].seq, seen))
    await eventually(lambda: seen == [1])
    # Lost alone (found by the silence), lost before one that comes (a jump in seq), heard.
    lost = {2, 4, 5, len(story)}
    for event in story[1:]:
        if event.seq in lost:
            async with republish_paused(js, topology.orders_stream):
                position = (await log.append(event, expected_stream_seq=position)).stream_seq
        else:
            position = (await log.append(event, expected_stream_seq=position)).stream_seq
        if event.seq != 4:  # 5 is lost too: found when 6 comes, or by the silence
            await eventually(lambda: seen[-1] == event.seq, timeout=5, message=f"seq {event.seq} seen")
    await asyncio.wait_for(following, 5)
    assert seen == list(range(1, len(story) + 1))
    assert hub.watched_orders == 0


async def test_watches_of_orders_that_do_not_exist_are_released_however_they_end(jetstream) -> None:
    nc, js, topology = jetstream
    hub = LiveHub(nc, EventLog(nc, js, topology), idle_check_s=0.05)

    async def watch_until_cancelled(order_id: str) -> None:
        async for _ in hub.watch(order_id):
            pass

    async def watch_and_leave(order_id: str) -> None:
        events = hub.watch(order_id)
        assert await anext(events) is None  # replayed nothing
        await events.aclose()

    waiting = [asyncio.create_task(watch_until_cancelled(f"o-none-{i}")) for i in range(50)]
    await eventually(lambda: hub.watched_orders == 50)
    await asyncio.gather(*(watch_and_leave(f"o-gone-{i}") for i in range(50)))
    assert hub.watched_orders == 50
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert hub.watched_orders == 0
    assert nc._subs and all("o-none" not in sub.subject for sub in nc._subs.values())


async def test_a_reconnect_recovers_the_events_published_while_away_the_terminal_one_included(
    jetstream, nats_url
) -> None:
    nc, js, topology = jetstream
    writer = EventLog(nc, js, topology)
    story = order_story("o-away", "retried")
    position = (await writer.append(story[0], expected_stream_seq=0)).stream_seq
    async with CuttableRelay(nats_url.removeprefix("nats://")) as relay:
        listeners = ConnectionListeners()
        gateway_nc = await connect_nats(Common(nats_url=f"nats://{relay.address}"), "gateway-test", listeners=listeners)
        try:
            # No safety net within the test: only the reconnect can bring the events back.
            hub = LiveHub(gateway_nc, EventLog(gateway_nc, gateway_nc.jetstream(), topology), idle_check_s=600)
            listeners.reconnected.append(hub.recover_all)
            seen: list[int] = []
            following = asyncio.create_task(follow(hub, "o-away", story[-1].seq, seen))
            await eventually(lambda: seen == [1])
            relay.open = False
            relay.cut()
            await eventually(lambda: not gateway_nc.is_connected, message="the gateway's connection dropped")
            for event in story[1:]:
                position = (await writer.append(event, expected_stream_seq=position)).stream_seq
            relay.open = True
            await asyncio.wait_for(following, 10)
            assert seen == list(range(1, len(story) + 1))
            assert hub.watched_orders == 0
        finally:
            await gateway_nc.close()


async def test_events_dropped_by_a_slow_consumer_subscription_are_read_from_the_log(jetstream, nats_url) -> None:
    nc, js, topology = jetstream
    writer = EventLog(nc, js, topology)
    errors: list[Exception] = []

    async def record(exc: Exception) -> None:
        errors.append(exc)

    listeners = ConnectionListeners(errors=[record])
    gateway_nc = await connect_nats(Common(nats_url=nats_url), "gateway-test", listeners=listeners)
    try:
        # A subscription allowed no pending bytes drops every message, as a slow consumer's
        # overflowing one does; no safety net within the test.
        hub = LiveHub(gateway_nc, EventLog(gateway_nc, gateway_nc.jetstream(), topology), idle_check_s=600,
                      pending_bytes_limit=1)
        listeners.errors.append(hub.on_error)
        story = order_story("o-slow", "retried")
        position = (await writer.append(story[0], expected_stream_seq=0)).stream_seq
        seen: list[int] = []
        following = asyncio.create_task(follow(hub, "o-slow", story[-1].seq, seen))
        await eventually(lambda: seen == [1])
        for event in story[1:]:
            position = (await writer.append(event, expected_stream_seq=position)).stream_seq
            await eventually(lambda: seen[-1] == event.seq, timeout=5, message=f"seq {event.seq} seen")
        await asyncio.wait_for(following, 5)
        assert seen == list(range(1, len(story) + 1))
        assert len(errors) >= len(story) - 1
        assert all(isinstance(e, nats.errors.SlowConsumerError) for e in errors)
    finally:
        await gateway_nc.close()


async def test_a_quiet_order_is_checked_once_per_period_whatever_its_watchers_with_a_growing_period(jetstream) -> None:
    nc, js, topology = jetstream
    reads: list[float] = []

    class CountedLog(EventLog):
        async def read(self, order_id: str, *, from_stream_seq: int = 1):
            reads.append(asyncio.get_running_loop().time())
            return await super().read(order_id, from_stream_seq=from_stream_seq)

    log = CountedLog(nc, js, topology)
    await log.append(order_story("o-quiet", "retried")[0], expected_stream_seq=0)
    hub = LiveHub(nc, log, idle_check_s=0.05, idle_check_max_s=0.2)

    async def watch_quietly() -> None:
        async for _ in hub.watch("o-quiet"):
            pass

    watchers = [asyncio.create_task(watch_quietly()) for _ in range(50)]
    await eventually(lambda: len(reads) >= 50, message="every watcher replayed")
    replayed = len(reads)
    await eventually(lambda: len(reads) >= replayed + 5, message="five checks", timeout=5)
    checks = reads[replayed:]
    gaps = [b - a for a, b in zip(checks, checks[1:])]
    assert len(checks) <= 6, "one read per check of the order, not one per watcher"
    assert gaps[-1] >= 0.15 and gaps[0] < gaps[-1], gaps  # 0.05, 0.1, 0.2, 0.2 ...
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    assert hub.watched_orders == 0
