"""Order streams' live hub against a real nats-server: lost live messages, released watches."""

from __future__ import annotations

import asyncio

from services.gateway.live import LiveHub
from shared.eventlog import EventLog
from tests.helpers import eventually, republish_paused
from tests.unit.test_projector_fold import order_story


async def test_a_watcher_sees_every_event_once_and_in_order_when_live_messages_are_lost(jetstream) -> None:
    nc, js, topology = jetstream
    log = EventLog(nc, js, topology)
    hub = LiveHub(nc, log, idle_check_s=0.2)
    story = order_story("o-lost", "retried")
    position = (await log.append(story[0], expected_stream_seq=0)).stream_seq
    seen: list[int] = []

    async def follow() -> None:
        async for event in hub.watch("o-lost"):
            if event is not None:
                seen.append(event.seq)
                if event.seq == story[-1].seq:
                    return

    following = asyncio.create_task(follow())
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
