"""The projector's pure parts: the fold of logged events into rows, row encoding, migration files."""

from __future__ import annotations

import random

import msgspec
import pytest

from services.projector.fold import Current, project
from services.projector.migrations import discover
from services.projector.store import order_record, timestamp
from shared import events as ev
from shared.orders import OrderState, fold

STORIES = ("confirmed", "retried", "dropped", "no_route", "slippage", "exhausted", "pending", "routing", "submitted")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def order_story(
    order_id: str, story: str, *, start: int = T0, client_order_id: str | None = None
) -> list[ev.OrderEvent]:
    """A realistic, legal event sequence of one order ending as `story` says."""
    events: list[ev.OrderEvent] = []

    def add(cls: type[ev.Event], **fields) -> None:
        seq = len(events) + 1
        previous = events[-1].event_id if events else None
        events.append(
            cls(
                order_id=order_id,
                seq=seq,
                event_id=f"{order_id}-{seq}",
                occurred_at=start + 150 * seq,
                correlation_id=order_id,
                causation_id=previous,
                **fields,
            )
        )

    spec = ev.OrderSpec(
        order_type="market",
        token_in="SOL",
        token_out="USDC",
        amount_in=1_500_000_000,
        slippage_bps=50,
        client_order_id=client_order_id,
        request_hash=f"h-{order_id}",
    )
    add(ev.OrderAccepted, order=spec)
    if story == "pending":
        return events
    add(ev.RoutingStarted)
    if story == "routing":
        return events
    if story == "no_route":
        add(ev.OrderFailed, code="no_route", reason="no pool holds SOL/USDC liquidity")
        return events
    quotes = (
        ev.QuoteSnapshot(
            venue="raydium",
            pool_id="ray-1",
            amount_in=spec.amount_in,
            amount_out=262_430_000,
            fee=3_750_000,
            price_impact_bps=12,
        ),
        ev.QuoteSnapshot(
            venue="meteora",
            pool_id="met-1",
            amount_in=spec.amount_in,
            amount_out=262_100_000,
            fee=1_500_000,
            price_impact_bps=9,
        ),
    )
    route = ev.Route(
        venue="raydium",
        pool_id="ray-1",
        amount_in=spec.amount_in,
        expected_out=262_430_000,
        min_out=261_117_850,
        fee=3_750_000,
        price_impact_bps=12,
        slot=1000,
        quotes=quotes,
    )
    add(ev.OrderRouted, route=route)
    failures = {"retried": 1, "dropped": 1, "exhausted": 3}.get(story, 0)
    for attempt in range(1, failures + 1):
        signature = f"sig-{order_id}-{attempt}"
        _build(add, attempt, signature)
        if story == "dropped":
            add(ev.TransactionSubmitted, attempt=attempt, signature=signature, slot=1001)
            add(
                ev.AttemptFailed,
                attempt=attempt,
                signature=signature,
                kind="dropped",
                reason="blockhash expired",
                retry_at=start + 5000,
            )
        else:
            add(
                ev.AttemptFailed,
                attempt=attempt,
                signature=signature,
                kind="node_busy",
                reason="node is busy",
                retry_at=start + 5000,
            )
    if story == "exhausted":
        add(ev.OrderFailed, code="attempts_exhausted", reason="3 attempts failed")
        return events
    attempt = failures + 1
    signature = f"sig-{order_id}-{attempt}"
    _build(add, attempt, signature)
    add(ev.TransactionSubmitted, attempt=attempt, signature=signature, slot=1002)
    if story == "submitted":
        return events
    if story == "slippage":
        add(ev.OrderFailed, code="slippage_exceeded", reason="output 260000000 below minimum 261117850")
    else:
        add(ev.OrderConfirmed, signature=signature, slot=1003, amount_out=262_400_000)
    return events


def _build(add, attempt: int, signature: str) -> None:
    add(
        ev.TransactionBuilt,
        attempt=attempt,
        signature=signature,
        blockhash=f"bh-{attempt}",
        blockhash_slot=1125,
        last_valid_slot=1150,
        fee_payer="payer",
        compute_unit_limit=200_000,
        compute_unit_price=5_000,
        priority_fee_lamports=1_000,
        instructions=("compute_budget", "wrap_sol", "swap", "unwrap_sol"),
        wraps_sol=True,
    )


def interleaved_log(orders: int, seed: int = 7) -> list[tuple[int, ev.OrderEvent]]:
    """Many orders' stories interleaved as a log would hold them, numbered from stream seq 1."""
    rng = random.Random(seed)
    queues = [order_story(f"o{i:05d}", STORIES[i % len(STORIES)], start=T0 + i) for i in range(orders)]
    log: list[ev.OrderEvent] = []
    while queues:
        queue = rng.choice(queues)
        log.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return list(enumerate(log, 1))


def project_in_batches(log: list[tuple[int, ev.OrderEvent]], size: int) -> dict[str, Current]:
    current: dict[str, Current] = {}
    for i in range(0, len(log), size):
        batch = log[i : i + size]
        projection = project({e.order_id: current[e.order_id] for _, e in batch if e.order_id in current}, batch)
        assert not projection.gaps and not projection.rejects
        current.update(projection.orders)
    return current


@pytest.mark.parametrize("story", STORIES)
def test_every_story_is_a_legal_sequence(story: str) -> None:
    state = fold(order_story("o1", story))
    assert state is not None and state.seq == len(order_story("o1", story))


def test_a_batch_folds_each_order_to_the_state_of_its_whole_history() -> None:
    log = interleaved_log(60)
    projection = project({}, log)
    assert not projection.rejects and not projection.gaps
    for order_id, row in projection.orders.items():
        history = [(s, e) for s, e in log if e.order_id == order_id]
        assert row.state == fold(e for _, e in history)
        assert row.last_stream_seq == history[-1][0]
    assert len(projection.orders) == 60
    assert len(projection.events) == len(log)
    assert projection.max_stream_seq == len(log)
    assert projection.newest_occurred_at == max(e.occurred_at for _, e in log)


def test_folding_in_small_batches_equals_folding_in_one() -> None:
    log = interleaved_log(40)
    assert project_in_batches(log, 7) == project({}, log).orders


def test_events_at_or_below_the_applied_seq_are_skipped() -> None:
    log = interleaved_log(20)
    current = project({}, log).orders
    again = project(current, log)
    assert again.orders == {} and again.events == [] and again.rejects == []
    assert sum(n for (_, outcome), n in again.outcomes.items() if outcome == "duplicate") == len(log)


def test_an_event_repeated_within_a_batch_is_applied_once() -> None:
    events = order_story("o1", "confirmed")
    batch = [(i, e) for i, e in enumerate(events, 1)]
    projection = project({}, batch + batch[2:4])
    assert projection.orders["o1"].state == fold(events)
    assert len(projection.events) == len(events)


def test_a_missing_earlier_event_is_reported_as_a_gap_with_the_position_to_read_from() -> None:
    events = order_story("o1", "confirmed")
    first = project({}, [(10, events[0]), (11, events[1])]).orders
    projection = project(first, [(13, events[3])])
    assert projection.gaps == {"o1": 11}
    whole = project(first, [(12, events[2]), (13, events[3])], final=True)
    assert whole.orders["o1"].state == fold(events[:4])


def test_an_order_first_seen_mid_history_is_a_gap_from_the_start_of_the_log() -> None:
    events = order_story("o1", "confirmed")
    assert project({}, [(5, events[2])]).gaps == {"o1": 0}


def test_a_gap_that_remains_in_the_final_pass_is_rejected_and_the_order_keeps_its_state() -> None:
    events = order_story("o1", "confirmed")
    first = project({}, [(1, events[0])]).orders
    projection = project(first, [(3, events[2])], final=True)
    assert projection.orders == {}
    assert [(r.seq, r.event_type) for r in projection.rejects] == [(3, "OrderRouted")]


def test_an_illegal_event_is_rejected_with_every_later_event_of_its_order_and_others_carry_on() -> None:
    bad = order_story("bad", "confirmed")
    good = order_story("good", "confirmed")
    # Confirmation of a transaction that was never built: refused by the state machine.
    bogus = ev.OrderConfirmed(
        order_id="bad",
        seq=3,
        event_id="x",
        occurred_at=T0,
        correlation_id="bad",
        signature="nope",
        slot=1,
        amount_out=1,
    )
    log = [(1, bad[0]), (2, bad[1]), (3, bogus), (4, bad[3]), (5, good[0]), (6, good[1])]
    projection = project({}, log, final=True)
    assert projection.orders["bad"].state == fold(bad[:2])
    assert projection.orders["good"].state == fold(good[:2])
    assert [(r.order_id, r.seq) for r in projection.rejects] == [("bad", 3), ("bad", 4)]
    assert "follows rejected event seq 3" in projection.rejects[1].reason
    # A refused event is in no history a reader folds again.
    assert [(e.order_id, e.seq) for e in projection.events] == [("bad", 1), ("bad", 2), ("good", 1), ("good", 2)]
    assert projection.outcomes["OrderConfirmed", "rejected"] == 1


def test_the_event_payload_is_the_contract_encoding() -> None:
    events = order_story("o1", "pending")
    row = project({}, [(1, events[0])]).events[0]
    assert ev.decode(row.payload) == events[0]
    assert (row.event_type, row.seq, row.stream_seq, row.occurred_at) == ("OrderAccepted", 1, 1, events[0].occurred_at)


def test_an_order_row_flattens_the_state_and_carries_it_whole() -> None:
    events = order_story("o1", "retried", client_order_id="c-1")
    state = fold(events)
    assert state is not None
    record = order_record("o1", Current(state=state, last_stream_seq=99))
    assert record[:9] == ("o1", "c-1", "market", "confirmed", "SOL", "USDC", 1_500_000_000, 50, "raydium")
    assert record[9:16] == (262_430_000, 261_117_850, 262_400_000, "sig-o1-2", 2, None, None)
    assert record[16:20] == (timestamp(events[0].occurred_at), timestamp(events[-1].occurred_at), len(events), 99)
    assert msgspec.json.decode(record[20], type=OrderState) == state
    assert '"orderId":"o1"' in record[20]


def test_a_failed_order_row_names_the_failure() -> None:
    state = fold(order_story("o1", "slippage"))
    assert state is not None
    record = order_record("o1", Current(state=state, last_stream_seq=1))
    assert (record[3], record[12], record[14]) == ("failed", "sig-o1-1", "slippage_exceeded")


def test_timestamps_are_exact_to_the_millisecond() -> None:
    assert timestamp(T0 + 1).isoformat() == "2026-01-01T00:00:00.001000+00:00"


def test_migrations_are_found_in_version_order_and_other_files_are_ignored(tmp_path) -> None:
    (tmp_path / "010_later.sql").write_text("select 10")
    (tmp_path / "002_second.sql").write_text("select 2")
    (tmp_path / "README").write_text("not a migration")
    assert [(m.version, m.name, m.sql) for m in discover(tmp_path)] == [
        (2, "002_second.sql", "select 2"),
        (10, "010_later.sql", "select 10"),
    ]


def test_a_migration_version_defined_twice_is_an_error(tmp_path) -> None:
    (tmp_path / "001_a.sql").write_text("")
    (tmp_path / "1_b.sql").write_text("")
    with pytest.raises(ValueError, match="version 1 is defined twice"):
        discover(tmp_path)


def test_the_project_starts_its_migrations_at_version_one() -> None:
    assert [m.version for m in discover()][:1] == [1]
