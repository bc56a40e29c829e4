"""The router's book re-armed from a snapshot and the log's tail, and the order stream's limits,
on a real nats-server."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import msgspec
import nats.js.api as api
import pytest

from services.router.book import LimitBook
from services.router import resting
from services.router.resting import BookFeed
from shared import events as ev
from shared.clock import SystemClock
from shared.eventlog import EVENT_TYPE_HEADER, EventLog, ensure_streams
from shared.retention import DEFAULT_MAX_BYTES
from tests.helpers import eventually
from tests.kit import SPEC, make


async def append_orders(log: EventLog, rng: random.Random, count: int, prefix: str) -> None:
    """`count` limit orders: each opens, and most then fire, expire or are cancelled."""
    for n in range(count):
        order_id = f"{prefix}{n}"
        spec = msgspec.structs.replace(SPEC, order_type="limit", time_in_force="GTC",
                                       min_out=rng.choice([10**8, 2 * 10**8]))
        story = [make(ev.OrderAccepted, order_id, 1, order=spec), make(ev.OrderOpened, order_id, 2)]
        ending = rng.choice([None, ev.OrderTriggered, ev.OrderExpired, ev.OrderCancelled])
        if ending is not None:
            story.append(make(ending, order_id, 3))
        last = 0
        for event in story:
            last = (await log.append(event, expected_stream_seq=last)).stream_seq


async def armed(js, topology, *, snapshots: bool = True) -> BookFeed:
    feed = BookFeed(js, topology, LimitBook(), SystemClock(), snapshot_every_s=30 if snapshots else 0)
    await feed.start()
    await asyncio.wait_for(feed.caught_up.wait(), 10)
    return feed


async def test_a_router_restarted_from_a_snapshot_holds_the_book_a_full_replay_gives(jetstream) -> None:
    nc, js, topology = jetstream
    log, rng = EventLog(nc, js, topology), random.Random(7)
    await append_orders(log, rng, 40, "a")
    before = await armed(js, topology)
    saved = await before.save()
    await before.stop()
    await append_orders(log, rng, 40, "b")  # the tail a restart folds on from the snapshot
    tail = (await js.stream_info(topology.orders_stream)).state.last_seq
    restarted, replayed = await armed(js, topology), await armed(js, topology, snapshots=False)
    assert saved < tail and restarted.fold.stream_seq == replayed.fold.stream_seq == tail
    assert restarted.fold.snapshot("") == replayed.fold.snapshot("") and len(restarted.book) > 10
    # The feed follows live appends after a restore as after a replay.
    await append_orders(log, rng, 5, "c")
    await eventually(lambda: restarted.fold.snapshot("") == replayed.fold.snapshot("")
                     and restarted.fold.stream_seq > tail, message="both feeds fold the new events")
    for feed in (restarted, replayed):
        await feed.stop()


async def test_a_snapshot_older_than_the_first_stored_event_is_ignored_for_a_full_replay(jetstream) -> None:
    nc, js, topology = jetstream
    log, rng = EventLog(nc, js, topology), random.Random(11)
    await append_orders(log, rng, 10, "a")
    old = await armed(js, topology)
    assert len(old.book) > 0  # orders a snapshot would bring back
    await old.save()
    await old.stop()
    cancelled = make(ev.OrderCancelled, "late", 3)
    accepted = make(ev.OrderAccepted, "late", 1,
                    order=msgspec.structs.replace(SPEC, order_type="limit", time_in_force="GTC", min_out=10**8))
    last = (await log.append(accepted, expected_stream_seq=0)).stream_seq
    last = (await log.append(make(ev.OrderOpened, "late", 2), expected_stream_seq=last)).stream_seq
    await log.append(cancelled, expected_stream_seq=last)
    # Retention takes everything before the cancel: the snapshot cannot know the gap's events.
    info = await js.stream_info(topology.orders_stream)
    await js.purge_stream(topology.orders_stream, seq=info.state.last_seq)
    restarted = await armed(js, topology)
    assert restarted.fold.stream_seq == info.state.last_seq and len(restarted.book) == 0
    await restarted.stop()


async def test_the_set_up_step_applies_the_order_streams_limits_to_an_existing_stream(jetstream) -> None:
    _, js, topology = jetstream
    await js.update_stream(dataclasses.replace(
        (await js.stream_info(topology.orders_stream)).config, max_age=0, max_bytes=-1, discard=api.DiscardPolicy.OLD))
    await ensure_streams(js, topology, max_age_days=40, max_bytes=DEFAULT_MAX_BYTES // 2)
    config = (await js.stream_info(topology.orders_stream)).config
    assert (config.max_age, config.max_bytes, config.discard) == (40 * 86_400, DEFAULT_MAX_BYTES // 2,
                                                                  api.DiscardPolicy.NEW)


async def test_limits_that_could_drop_an_open_orders_events_are_refused(jetstream) -> None:
    _, js, topology = jetstream
    with pytest.raises(ValueError, match="ORDERS_MAX_AGE_DAYS 30 is too short"):
        await ensure_streams(js, topology, max_age_days=30)
    assert (await js.stream_info(topology.orders_stream)).config.max_age == 32 * 86_400


async def test_a_full_order_stream_refuses_an_append_and_keeps_every_stored_event(jetstream) -> None:
    nc, js, topology = jetstream
    log = EventLog(nc, js, topology)
    await js.update_stream(dataclasses.replace((await js.stream_info(topology.orders_stream)).config,
                                               max_bytes=4096))
    with pytest.raises(Exception) as refused:
        await append_orders(log, random.Random(3), 20, "f")
    info = await js.stream_info(topology.orders_stream)
    assert "maximum bytes exceeded" in str(refused.value).lower() and info.state.first_seq == 1


async def test_an_undecodable_event_is_left_out_and_the_book_still_arms(jetstream) -> None:
    nc, js, topology = jetstream
    await append_orders(EventLog(nc, js, topology), random.Random(5), 3, "a")
    ack = await js.publish(topology.order_subject("junk", 2, "OrderRouted"), b"not an event",
                           headers={EVENT_TYPE_HEADER: "OrderRouted"})
    feed = await armed(js, topology, snapshots=False)  # the junk is the last event: arming waits for it
    assert feed.fold.stream_seq == ack.seq
    await feed.stop()


async def test_a_snapshot_whose_chunks_a_rewrite_purged_mid_read_costs_a_time_limit_then_a_full_replay(
    jetstream, monkeypatch
) -> None:
    nc, js, topology = jetstream
    log, rng = EventLog(nc, js, topology), random.Random(13)
    await append_orders(log, rng, 20, "a")
    first = await armed(js, topology)
    await first.save()
    await first.stop()
    # The snapshot's description names chunks that are gone, as a read sees it when another
    # router's rewrite purges them under it: the object store's read then waits for ever.
    await js.purge_stream(f"OBJ_{topology.book_bucket}", subject=f"$O.{topology.book_bucket}.C.>")
    monkeypatch.setattr(resting, "READ_TIMEOUT_S", 0.3)
    store = await js.object_store(topology.book_bucket)
    with pytest.raises(asyncio.TimeoutError):
        await resting.read_snapshot(store, tries=2)
    restarted, replayed = await armed(js, topology), await armed(js, topology, snapshots=False)
    assert restarted.fold.snapshot("") == replayed.fold.snapshot("") and len(restarted.book) > 0
    for feed in (restarted, replayed):
        await feed.stop()
