import asyncio
import time

import pytest

from shared import events as ev
from shared.eventlog import ConcurrencyConflict, EventLog, StaleRead, ensure_streams
from tests.helpers import eventually
from tests.kit import HAPPY, history, make


@pytest.fixture
def log(jetstream):
    return EventLog(*jetstream)


async def stream_messages(log: EventLog) -> int:
    info = await log._js.stream_info(log.topology.orders_stream)
    return info.state.messages


async def test_creating_the_streams_twice_is_harmless(log):
    await ensure_streams(log._js, log.topology)
    await ensure_streams(log._js, log.topology)
    assert await stream_messages(log) == 0


async def test_a_retried_append_is_stored_once(log):
    event = make(ev.OrderAccepted, order_id="a1")
    first = await log.append(event, expected_stream_seq=0)
    again = await log.append(event, expected_stream_seq=0)
    assert not first.duplicate and again.duplicate and again.stream_seq == first.stream_seq
    assert await stream_messages(log) == 1


async def test_a_stale_expected_sequence_is_a_conflict_and_stores_nothing(log):
    first, second = history(ev.OrderAccepted, ev.RoutingStarted, order_id="a2")
    await log.append(first, expected_stream_seq=0)
    with pytest.raises(ConcurrencyConflict):
        await log.append(second, expected_stream_seq=0)
    rival = make(ev.OrderAccepted, order_id="a2")
    with pytest.raises(ConcurrencyConflict):
        await log.append(rival, expected_stream_seq=0)
    assert await stream_messages(log) == 1


async def test_of_many_concurrent_writers_exactly_one_moves_the_order(log):
    accepted = make(ev.OrderAccepted, order_id="a3")
    stored = await log.append(accepted, expected_stream_seq=0)
    rivals = [make(ev.RoutingStarted, order_id="a3", seq=2) for _ in range(20)]
    results = await asyncio.gather(
        *(log.append(r, expected_stream_seq=stored.stream_seq) for r in rivals), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(r, ConcurrencyConflict) for r in results if isinstance(r, Exception))
    loaded = await log.load("a3")
    assert [s.event.seq for s in loaded.events] == [1, 2] and loaded.state.status == "routing"


async def test_replaying_one_order_among_many_returns_its_events_in_order(log):
    last = {}
    for step in range(len(HAPPY)):
        for n in range(30):
            order_id = f"r{n}"
            event = history(*HAPPY, order_id=order_id)[step]
            appended = await log.append(event, expected_stream_seq=last.get(order_id, 0))
            last[order_id] = appended.stream_seq
    loaded = await log.load("r7")
    assert [s.event.seq for s in loaded.events] == list(range(1, len(HAPPY) + 1))
    assert loaded.state.status == "confirmed" and loaded.last_stream_seq == last["r7"]
    assert (await log.load("missing")).state is None


async def test_only_stored_events_are_republished_for_live_watchers(log):
    seen = []

    async def watch(msg):
        seen.append(ev.decode(msg.data))

    await log._nc.subscribe(log.topology.live_subject("a4"), cb=watch)
    await log._nc.flush()
    accepted, routing = history(ev.OrderAccepted, ev.RoutingStarted, order_id="a4")
    stored = await log.append(accepted, expected_stream_seq=0)
    with pytest.raises(ConcurrencyConflict):
        await log.append(routing, expected_stream_seq=stored.stream_seq + 5)
    await log.append(routing, expected_stream_seq=stored.stream_seq)
    await eventually(lambda: len(seen) >= 2, message="both stored events republished")
    await log._nc.flush()
    assert [e.seq for e in seen] == [1, 2]


async def test_a_replayed_event_carries_the_time_the_log_stored_it(log):
    before = time.time_ns() // 1_000_000
    await log.append(make(ev.OrderAccepted, order_id="a9"), expected_stream_seq=0)
    after = time.time_ns() // 1_000_000
    (stored,) = await log.read("a9")
    assert before <= stored.stored_at <= after  # the server's clock, on this machine


async def test_the_leader_counts_the_events_an_order_holds(log):
    assert await log.held_by_leader("a10") == 0
    first, second = history(ev.OrderAccepted, ev.RoutingStarted, order_id="a10")
    stored = await log.append(first, expected_stream_seq=0)
    await log.append(second, expected_stream_seq=stored.stream_seq)
    assert await log.held_by_leader("a10") == 2 and await log.held_by_leader("a1") == 0


async def test_a_load_that_must_reach_a_known_event_reads_again_and_says_so_if_it_never_comes(log):
    await log.append(make(ev.OrderAccepted, order_id="s1"), expected_stream_seq=0)
    await log.append(make(ev.RoutingStarted, order_id="s1", seq=2), expected_stream_seq=1)
    stored = log.read
    answers = []

    async def lagging(order_id, **options):  # a replica that has not applied seq 2 for two reads
        events = await stored(order_id, **options)
        answers.append(events if len(answers) >= 2 else events[:1])
        return answers[-1]

    log.read = lagging
    history = await log.load("s1", through_seq=2)
    assert [s.event.seq for s in history.events] == [1, 2] and [len(a) for a in answers] == [1, 1, 2]
    assert history.state.status == "routing"
    with pytest.raises(StaleRead, match="up to seq 2, not 3"):
        await log.load("s1", through_seq=3)


async def test_each_event_is_stored_on_its_own_subject_and_replay_returns_repeated_types_in_order(log):
    kinds = (ev.OrderAccepted, ev.RoutingStarted, ev.OrderRouted, ev.TransactionBuilt, ev.AttemptFailed,
             ev.TransactionBuilt, ev.TransactionSubmitted, ev.OrderConfirmed)
    events = history(*kinds, order_id="m1")
    other = history(*kinds[:3], order_id="m10")  # an order whose id extends the first one's
    position = {"m1": 0, "m10": 0}
    for event in [e for pair in zip(events, other) for e in pair] + events[len(other):]:
        position[event.order_id] = (await log.append(event, expected_stream_seq=position[event.order_id])).stream_seq
    stored = await log.read("m1")
    assert [(s.event.seq, type(s.event)) for s in stored] == [(e.seq, type(e)) for e in events]
    assert [s.stream_seq for s in stored] == sorted(s.stream_seq for s in stored)
    raw = await log._js.get_msg(log.topology.orders_stream, stored[5].stream_seq)
    assert raw.subject == log.topology.order_subject("m1", 6, "TransactionBuilt")
    assert log.topology.parse_order_subject(raw.subject) == ("m1", 6, "TransactionBuilt")
    # Read on from a stream position: only what was stored from there.
    assert [s.event.seq for s in await log.read("m1", from_stream_seq=stored[4].stream_seq)] == [5, 6, 7, 8]
    assert await log.held_by_leader("m1") == len(events) and await log.held_by_leader("m10") == len(other)


async def test_an_append_expecting_an_older_position_of_the_order_is_refused_whatever_its_subject(log):
    accepted, routing = history(ev.OrderAccepted, ev.RoutingStarted, order_id="c1")
    first = await log.append(accepted, expected_stream_seq=0)
    await log.append(make(ev.OrderAccepted, order_id="c2"), expected_stream_seq=0)  # moves the stream, not c1
    await log.append(routing, expected_stream_seq=first.stream_seq)
    rival = make(ev.OrderCancelled, order_id="c1", seq=2)  # another writer's step 2, another subject
    with pytest.raises(ConcurrencyConflict):
        await log.append(rival, expected_stream_seq=first.stream_seq)
    assert [type(s.event) for s in await log.read("c1")] == [ev.OrderAccepted, ev.RoutingStarted]


async def test_an_order_stream_of_the_old_layout_is_updated_in_place_with_a_warning(jetstream, caplog):
    import nats.js.api as api

    nc, js, topology = jetstream
    stream = topology.orders_stream
    await js.delete_stream(stream)
    await js.add_stream(api.StreamConfig(name=stream, subjects=[f"{topology.orders_prefix}.*"]))
    await js.publish(f"{topology.orders_prefix}.old1", b"{}", stream=stream)
    await ensure_streams(js, topology)
    info = await js.stream_info(stream)
    assert info.config.subjects == [topology.orders_subjects] and info.state.messages == 1
    assert "readable only from the read model" in caplog.text
