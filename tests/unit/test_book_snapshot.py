"""The router's book fold: a snapshot plus the events after it equals folding everything."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router import book_state
from services.router.book import LimitBook
from services.router.book_state import BookFold, BookSnapshot
from shared import events as ev
from shared.retention import MAX_RESTING_MS

NOW = 1_767_225_600_000
CREATED = "2026-01-01T00:00:00+00:00"
TOKENS = [("SOL", "USDC"), ("USDC", "SOL"), ("BONK", "SOL")]


def spec(kind: str, tif: str | None, expires_at: int | None, min_out: int, pair: int) -> ev.OrderSpec:
    token_in, token_out = TOKENS[pair]
    return ev.OrderSpec(order_type=kind, token_in=token_in, token_out=token_out, amount_in=1_000, slippage_bps=50,
                        request_hash="h", time_in_force=tif, expires_at=expires_at, min_out=min_out)


def meta(order_id: str, seq: int, at: int) -> dict:
    return {"order_id": order_id, "seq": seq, "event_id": f"{order_id}-{seq}", "occurred_at": at,
            "correlation_id": order_id}


@st.composite
def order_scripts(draw, order_id: str) -> list[ev.OrderEvent | None]:
    """One order's events in order; None stands for a stored event the book ignores."""
    at = NOW + draw(st.integers(0, 10_000))
    kind, tif = draw(st.sampled_from([("limit", "GTC"), ("limit", "GTD"), ("limit", "IOC"), ("sniper", None),
                                      ("market", None)]))
    expires = at + draw(st.integers(1, 2 * MAX_RESTING_MS)) if tif == "GTD" or (kind == "sniper" and draw(
        st.booleans())) else None
    # Few distinct limits, so that equal limits (which fire in arrival order) are common.
    accepted = ev.OrderAccepted(**meta(order_id, 1, at),
                                order=spec(kind, tif, expires, draw(st.sampled_from([900, 1_000, 1_100])),
                                           draw(st.integers(0, 2))))
    script: list[ev.OrderEvent | None] = [accepted]
    seq = 2
    if kind != "market" and tif != "IOC" and draw(st.booleans()):
        script.append(ev.OrderOpened(**meta(order_id, seq, at + 1), trigger="limit_price", pair=""))
        seq += 1
    script += [None] * draw(st.integers(0, 2))
    ending = draw(st.sampled_from(["rest", "triggered", "cancelled", "expired", "routing"]))
    if ending == "triggered":
        script.append(ev.OrderTriggered(**meta(order_id, seq, at + 2), slot=1, reason="limit reached"))
    elif ending == "cancelled":
        script.append(ev.OrderCancelled(**meta(order_id, seq, at + 2)))
    elif ending == "expired":
        script.append(ev.OrderExpired(**meta(order_id, seq, at + 2), reason="expiresAt passed"))
    elif ending == "routing":
        script.append(ev.RoutingStarted(**meta(order_id, seq, at + 2)))
    return script


@st.composite
def logs(draw) -> list[ev.OrderEvent | None]:
    """Several orders' scripts interleaved as a stream would store them."""
    scripts = [draw(order_scripts(f"o{n}")) for n in range(draw(st.integers(0, 25)))]
    out: list[ev.OrderEvent | None] = []
    while any(scripts):
        live = [s for s in scripts if s]
        out.append(draw(st.sampled_from(live)).pop(0))
    return out


def fold(fold_: BookFold, stored: list[tuple[int, ev.OrderEvent | None]]) -> BookFold:
    for seq, event in stored:
        if event is None:
            fold_.skip(seq)
        else:
            fold_.apply(event, seq)
    return fold_


def behaviour(f: BookFold) -> tuple:
    """Everything the router asks of the book, and what the next snapshot would hold."""
    book = f.book
    asked = [book.candidates(a, b, p, 1_000) for a, b in TOKENS for p in (899, 1_000, 1_101)]
    due = [book.due(NOW + t) for t in (0, MAX_RESTING_MS, 3 * MAX_RESTING_MS)]
    snipers = [book.waiting_for_pair(a, b) for a, b in TOKENS]
    return f.snapshot(CREATED), asked, due, snipers, len(book), book.sides(), book.sniper_pairs()


@settings(max_examples=200, deadline=None)
@given(logs(), st.data())
def test_a_snapshot_plus_the_events_after_it_folds_to_the_same_book_as_the_whole_log(events, data) -> None:
    stored = list(enumerate(events, start=1))
    whole = fold(BookFold(LimitBook()), stored)
    cut = data.draw(st.integers(0, len(stored)), label="cut")
    early = fold(BookFold(LimitBook()), stored[:cut])
    restored = BookFold(LimitBook(chunk_load=2))  # another chunking: the order of keys is what counts
    restored.restore(book_state.decode(book_state.encode(early.snapshot(CREATED))))
    fold(restored, stored[cut:])
    assert behaviour(restored) == behaviour(whole)
    assert restored.stream_seq == whole.stream_seq == len(stored)


def test_every_resting_order_expires_at_the_latest_when_it_has_rested_the_longest_an_order_may() -> None:
    f = BookFold(LimitBook())
    accepted = [
        ev.OrderAccepted(**meta("gtc", 1, NOW), order=spec("limit", "GTC", None, 900, 0)),
        ev.OrderAccepted(**meta("far", 1, NOW), order=spec("limit", "GTD", NOW + 2 * MAX_RESTING_MS, 900, 0)),
        ev.OrderAccepted(**meta("near", 1, NOW), order=spec("limit", "GTD", NOW + 5, 900, 0)),
        ev.OrderAccepted(**meta("snipe", 1, NOW), order=spec("sniper", None, None, 0, 0)),
    ]
    for n, event in enumerate(accepted, start=1):
        f.apply(event, n)
        f.apply(ev.OrderOpened(**meta(event.order_id, 2, NOW + 1), trigger="x", pair=""), 10 + n)
    deadlines = {o.order_id: o.expires_at for o in f.book.orders()}
    assert deadlines == {"gtc": NOW + MAX_RESTING_MS, "far": NOW + MAX_RESTING_MS, "near": NOW + 5,
                         "snipe": NOW + MAX_RESTING_MS}
    due = f.book.due(NOW + MAX_RESTING_MS)
    assert [o.order_id for o in due] == ["near", "gtc", "far", "snipe"]
    assert [book_state.expiry_reason(o) for o in due] == ["expiresAt passed"] + 3 * [
        "rested 30 days, the longest an order may rest"]


def snap(seq: int, created: str = CREATED) -> BookSnapshot:
    return BookSnapshot(stream_created=created, stream_seq=seq, resting=[], pending=[])


def test_a_snapshot_is_used_only_when_every_event_after_it_is_still_in_the_same_stream() -> None:
    assert book_state.usable(snap(50), stream_created=CREATED, first_seq=1, last_seq=80)
    assert book_state.usable(snap(80), stream_created=CREATED, first_seq=1, last_seq=80)  # nothing after it
    assert book_state.usable(snap(50), stream_created=CREATED, first_seq=51, last_seq=80)  # retention took 1..50
    # Retention took events after the snapshot: one may have removed an order it holds.
    assert not book_state.usable(snap(50), stream_created=CREATED, first_seq=52, last_seq=80)
    # Ahead of the stream, or of another incarnation of it: sequences mean something else.
    assert not book_state.usable(snap(81), stream_created=CREATED, first_seq=1, last_seq=80)
    assert not book_state.usable(snap(50), stream_created="2026-02-01T00:00:00+00:00", first_seq=1, last_seq=80)


def test_a_snapshot_of_another_version_or_unreadable_is_refused() -> None:
    data = book_state.encode(BookSnapshot(version=99, stream_created=CREATED, stream_seq=1, resting=[], pending=[]))
    for bad in (data, b"\x00junk"):
        with pytest.raises(ValueError):
            book_state.decode(bad)


TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_each_order_keeps_its_acceptances_trace_context_through_a_snapshot_pending_or_resting() -> None:
    f = BookFold(LimitBook())
    f.apply(ev.OrderAccepted(**meta("rests", 1, NOW), order=spec("limit", "GTC", None, 900, 0)), 1, TRACE)
    f.apply(ev.OrderOpened(**meta("rests", 2, NOW + 1), trigger="x", pair=""), 2, "00-other-context")
    f.apply(ev.OrderAccepted(**meta("pending", 1, NOW), order=spec("sniper", None, None, 0, 0)), 3, TRACE)
    restored = BookFold(LimitBook())
    restored.restore(book_state.decode(book_state.encode(f.snapshot(CREATED))))
    restored.apply(ev.OrderOpened(**meta("pending", 2, NOW + 1), trigger="x", pair=""), 4)
    assert {o.order_id: o.trace for o in restored.book.orders()} == {"rests": TRACE, "pending": TRACE}


def test_a_snapshot_written_before_orders_kept_a_trace_context_is_read_with_none() -> None:
    resting = book_state.resting_order(spec("limit", "GTC", None, 900, 0), "o1", NOW)
    older = {"version": 1, "stream_created": CREATED, "stream_seq": 1, "pending": [],
             "resting": [{k: v for k, v in msgspec.structs.asdict(resting).items() if k != "trace"}]}
    assert book_state.decode(msgspec.msgpack.encode(older)).resting == [resting]
