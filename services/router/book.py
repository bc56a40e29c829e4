"""The resting book of one router: limit orders waiting for a price, sniper orders for a pool.

Limit orders sit on a side per direction (token_in, token_out), sorted by their limit
price `min_out / amount_in` (tokenOut base units per tokenIn base unit, an exact rational)
and then by arrival. An order is executable once the market pays at least its limit, so
for a market price the candidates are a prefix of the side: a bisect and a slice, O(log n
+ k), touching only the k orders the price reaches however many rest.

Sniper orders wait for a pool of their pair to launch; they sit in a bucket per unordered
pair, in arrival order. Both kinds may carry an expiry, kept in a min-heap with lazy
deletion.

The book decides nothing and does no I/O: the router asks it who might fire, quotes each
candidate exactly for its own size (price impact), appends the event, and only then calls
`remove`. `due` likewise only reports expired orders; the caller removes them after
appending `OrderExpired`, so a failed append leaves them due on the next call.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Literal

import msgspec

from services.router.book_side import Key, Side, bound_key, price_key

Kind = Literal["limit", "sniper"]
Direction = tuple[str, str]
Pair = tuple[str, str]

# Rebuild the expiry heap once dead entries outnumber live ones (and there are this many),
# so cancelled long-dated orders do not pile up in it.
_COMPACT_AT = 1024


class RestingOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order waiting in the book: sell `amount_in` of `token_in` for at least `min_out`."""

    order_id: str
    token_in: str
    token_out: str
    amount_in: int  # base units of token_in
    min_out: int  # base units of token_out, for the whole amount_in
    expires_at: int | None  # ms since epoch; None rests until cancelled
    kind: Kind = "limit"
    accepted_at: int = 0  # ms since epoch
    #: The trace context its acceptance was appended in (`traceparent`; "" untraced): its
    #: firing or expiry continues the order's trace.
    trace: str = ""

    def __post_init__(self) -> None:
        if self.token_in == self.token_out:
            raise ValueError(f"order {self.order_id}: token_in and token_out are both {self.token_in}")
        if self.amount_in <= 0:
            raise ValueError(f"order {self.order_id}: amount_in must be positive, not {self.amount_in}")
        if self.min_out < 0:
            raise ValueError(f"order {self.order_id}: min_out must not be negative, not {self.min_out}")
        if self.kind not in ("limit", "sniper"):
            raise ValueError(f"order {self.order_id}: kind must be limit or sniper, not {self.kind!r}")


def pair_of(token_a: str, token_b: str) -> Pair:
    """The unordered pair, spelt the same way from either direction."""
    return (token_a, token_b) if token_a <= token_b else (token_b, token_a)


class _Entry(msgspec.Struct, frozen=True):
    order: RestingOrder
    seq: int
    key: Key | None  # None for sniper orders


class LimitBook:
    """Every resting order of one engine, indexed for price triggers, launches and expiry."""

    def __init__(self, *, chunk_load: int = 512) -> None:
        """`chunk_load` sizes the chunks of each sorted side (see `book_side.Side`)."""
        if chunk_load < 2:
            raise ValueError(f"chunk_load must be at least 2, not {chunk_load}")
        self._chunk_load = chunk_load
        self._entries: dict[str, _Entry] = {}
        self._sides: dict[Direction, Side[RestingOrder]] = {}
        self._snipers: dict[Pair, dict[str, RestingOrder]] = {}
        self._expiry: list[tuple[int, int, str]] = []  # (expires_at, seq, order_id)
        self._dead_in_heap = 0
        self._seq = itertools.count(1)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._entries

    def orders(self) -> list[RestingOrder]:
        """Every resting order in arrival order: adding them in this order to an empty book
        gives a book that behaves exactly as this one."""
        return [entry.order for entry in self._entries.values()]

    def get(self, order_id: str) -> RestingOrder | None:
        entry = self._entries.get(order_id)
        return entry.order if entry is not None else None

    def add(self, order: RestingOrder) -> bool:
        """Rest an order. False (and no change) if an order with this id already rests,
        so replaying the log into the book is harmless."""
        if order.order_id in self._entries:
            return False
        seq = next(self._seq)
        key: Key | None = None
        if order.kind == "sniper":
            self._snipers.setdefault(pair_of(order.token_in, order.token_out), {})[order.order_id] = order
        else:
            key = price_key(order.min_out, order.amount_in, seq)
            side = self._sides.get((order.token_in, order.token_out))
            if side is None:
                side = self._sides[(order.token_in, order.token_out)] = Side(self._chunk_load)
            side.insert(key, order)
        if order.expires_at is not None:
            heapq.heappush(self._expiry, (order.expires_at, seq, order.order_id))
        self._entries[order.order_id] = _Entry(order, seq, key)
        return True

    def remove(self, order_id: str) -> bool:
        """Take an order out (cancelled, triggered or expired). False if it was not resting."""
        entry = self._entries.pop(order_id, None)
        if entry is None:
            return False
        order = entry.order
        if entry.key is None:
            pair = pair_of(order.token_in, order.token_out)
            bucket = self._snipers[pair]
            del bucket[order_id]
            if not bucket:
                del self._snipers[pair]
        else:
            direction = (order.token_in, order.token_out)
            side = self._sides[direction]
            side.delete(entry.key)
            if not len(side):
                del self._sides[direction]
        if order.expires_at is not None:
            self._dead_in_heap += 1
            if self._dead_in_heap >= _COMPACT_AT and 2 * self._dead_in_heap > len(self._expiry):
                self._compact()
        return True

    def candidates(self, token_in: str, token_out: str, price_num: int, price_den: int) -> list[RestingOrder]:
        """Limit orders selling token_in for token_out whose limit is at most `price_num /
        price_den` (tokenOut base units per tokenIn base unit), the most permissive first and
        equal limits in arrival order.

        Pass the best marginal price the market offers in this direction (after fees, for a
        tiny amount). A candidate still needs an exact quote for its own size before it fires.
        """
        if price_den <= 0 or price_num < 0:
            raise ValueError(f"price {price_num}/{price_den} must have a positive denominator and be non-negative")
        side = self._sides.get((token_in, token_out))
        if side is None:
            return []
        return side.up_to(bound_key(price_num, price_den))

    def waiting_for_pair(self, token_a: str, token_b: str) -> list[RestingOrder]:
        """Every sniper order on this pair, either direction, in arrival order."""
        bucket = self._snipers.get(pair_of(token_a, token_b))
        return list(bucket.values()) if bucket else []

    def due(self, now_ms: int) -> list[RestingOrder]:
        """Resting orders with `expires_at <= now_ms`, earliest expiry first (then arrival).

        Does not remove them: the caller removes each after appending its `OrderExpired`.
        Costs O(k log k) for k due orders plus the dead entries it drops on the way.
        """
        heap = self._expiry
        while heap and heap[0][0] <= now_ms and not self._live(heap[0]):
            heapq.heappop(heap)
            self._dead_in_heap -= 1
        found: list[tuple[int, int, str]] = []
        stack = [0] if heap else []
        # Walk the part of the heap at or below now_ms: a node later than now_ms has only
        # later nodes beneath it.
        while stack:
            i = stack.pop()
            item = heap[i]
            if item[0] > now_ms:
                continue
            if self._live(item):
                found.append(item)
            stack.extend(c for c in (2 * i + 1, 2 * i + 2) if c < len(heap))
        found.sort()
        return [self._entries[oid].order for _, _, oid in found]

    def sides(self) -> dict[Direction, int]:
        """Resting limit orders per direction (token_in, token_out); empty sides omitted."""
        return {direction: len(side) for direction, side in self._sides.items()}

    def sniper_pairs(self) -> dict[Pair, int]:
        """Waiting sniper orders per unordered pair."""
        return {pair: len(bucket) for pair, bucket in self._snipers.items()}

    def _live(self, item: tuple[int, int, str]) -> bool:
        entry = self._entries.get(item[2])
        return entry is not None and entry.seq == item[1]

    def _compact(self) -> None:
        self._expiry = [item for item in self._expiry if self._live(item)]
        heapq.heapify(self._expiry)
        self._dead_in_heap = 0


__all__ = ["LimitBook", "RestingOrder", "pair_of"]
