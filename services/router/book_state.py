"""The fold of the order stream into a resting book, and its snapshots.

`BookFold.apply` is a pure function of the events it is given (and their order), so the
state after a stream position can be saved and folding can go on from there: a snapshot
at sequence S plus the events after S gives the same book as folding everything. A
snapshot records the resting orders in arrival order (ties at one limit price fire in
that order) and the accepted orders not yet open, each with the trace context of its
acceptance (a firing after a restart continues the order's trace).
"""

from __future__ import annotations

import msgspec

from services.router.book import LimitBook, RestingOrder
from shared import events as ev
from shared.retention import DAY_MS, MAX_RESTING_MS, resting_deadline

# Events after which an order is no longer in (or on its way into) the book.
LEAVES = frozenset({"OrderTriggered", "OrderCancelled", "OrderExpired", "OrderFailed", "RoutingStarted", "OrderRouted"})
WATCHED = frozenset({"OrderAccepted", "OrderOpened"}) | LEAVES

SNAPSHOT_VERSION = 1


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """A limit or sniper order accepted and not yet open."""

    order_id: str
    spec: ev.OrderSpec
    accepted_at: int
    trace: str = ""  # the acceptance's trace context, as `RestingOrder.trace`


class BookSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A `BookFold` at one position of one incarnation of the order stream."""

    version: int = SNAPSHOT_VERSION
    stream_created: str  # the stream's creation time: a stream made anew restarts its sequences
    stream_seq: int  # the last event folded in
    resting: list[RestingOrder]  # arrival order
    pending: list[Pending]  # acceptance order


def resting_order(spec: ev.OrderSpec, order_id: str, accepted_at: int, trace: str = "") -> RestingOrder:
    """The book's form of an order, expiring at the latest when it has rested as long as any may."""
    return RestingOrder(
        order_id=order_id,
        token_in=spec.token_in,
        token_out=spec.token_out,
        amount_in=spec.amount_in,
        min_out=spec.min_out or 0,
        expires_at=resting_deadline(accepted_at, spec.expires_at),
        kind="sniper" if spec.order_type == "sniper" else "limit",
        accepted_at=accepted_at,
        trace=trace,
    )


def expiry_reason(order: RestingOrder) -> str:
    """Why a due order expires: its own `expiresAt`, or the longest an order may rest."""
    if order.accepted_at and order.expires_at == order.accepted_at + MAX_RESTING_MS:
        return f"rested {MAX_RESTING_MS // DAY_MS} days, the longest an order may rest"
    return "expiresAt passed"


class BookFold:
    """A `LimitBook` and the accepted orders about to enter it, as of one stream position."""

    def __init__(self, book: LimitBook):
        self.book = book
        self.pending: dict[str, Pending] = {}
        self.stream_seq = 0

    def apply(self, event: ev.OrderEvent, stream_seq: int, trace: str = "") -> None:
        """Fold one event stored at `stream_seq`, appended in trace context `trace`."""
        match event:
            case ev.OrderAccepted(order=spec) if spec.order_type in ("limit", "sniper"):
                self.pending[event.order_id] = Pending(order_id=event.order_id, spec=spec,
                                                       accepted_at=event.occurred_at, trace=trace)
            case ev.OrderOpened():
                accepted = self.pending.pop(event.order_id, None)
                if accepted is not None:
                    self.book.add(resting_order(accepted.spec, event.order_id, accepted.accepted_at, accepted.trace))
            case _ if type(event).__name__ in LEAVES:
                self.pending.pop(event.order_id, None)
                self.book.remove(event.order_id)
        self.stream_seq = max(self.stream_seq, stream_seq)

    def skip(self, stream_seq: int) -> None:
        """Record a stored event that does not change the book."""
        self.stream_seq = max(self.stream_seq, stream_seq)

    def snapshot(self, stream_created: str) -> BookSnapshot:
        return BookSnapshot(
            stream_created=stream_created,
            stream_seq=self.stream_seq,
            resting=self.book.orders(),
            pending=list(self.pending.values()),
        )

    def restore(self, snapshot: BookSnapshot) -> None:
        """Take the state of `snapshot` (into an empty book)."""
        if len(self.book) or self.pending or self.stream_seq:
            raise ValueError("a snapshot is restored into an empty fold only")
        for order in snapshot.resting:
            self.book.add(order)
        self.pending = {p.order_id: p for p in snapshot.pending}
        self.stream_seq = snapshot.stream_seq


def encode(snapshot: BookSnapshot) -> bytes:
    return msgspec.msgpack.encode(snapshot)


def decode(data: bytes) -> BookSnapshot:
    """A snapshot, or ValueError for one this version cannot read."""
    try:
        snapshot = msgspec.msgpack.decode(data, type=BookSnapshot)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ValueError(f"unreadable book snapshot: {exc}") from exc
    if snapshot.version != SNAPSHOT_VERSION:
        raise ValueError(f"book snapshot version {snapshot.version}, expected {SNAPSHOT_VERSION}")
    return snapshot


def usable(snapshot: BookSnapshot, *, stream_created: str, first_seq: int, last_seq: int) -> bool:
    """Whether folding on from `snapshot` gives what folding the stream from its start gives.

    It must come from this incarnation of the stream and not be ahead of it, and every event
    after it must still be stored: had retention removed some (the snapshot is older than
    the stream's first message), one of them may have taken an order out of the book, so
    the snapshot could bring back an order long gone. Then only a full replay is right:
    by the retention rule every open order's events are all still stored.
    """
    return (
        snapshot.stream_created == stream_created
        and snapshot.stream_seq <= last_seq
        and snapshot.stream_seq + 1 >= first_seq
    )
