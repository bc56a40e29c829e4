"""The order event contract: every state change of an order, as stored in the event log.

Events are frozen msgspec Structs in one tagged union (`OrderEvent`). On the wire they are
JSON with camelCase keys and an `event` tag naming the type. Amounts are integers in base
units; times are integer milliseconds since the Unix epoch.

Versioning: adding a field with a default is compatible and needs no bump. A breaking
change bumps the class's `v` default and adds an upcaster to `UPCASTERS`, which rewrites
the raw mapping of an older version before it is decoded.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import msgspec

OrderType = Literal["market", "limit", "sniper"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag=True, rename="camel"):
    """Fields every order event carries."""

    order_id: str
    seq: int  # per-order, 1 for the first event, increasing by exactly one
    event_id: str
    occurred_at: int  # ms since epoch
    correlation_id: str  # the order's id for events of one order; ties logs and traces
    causation_id: str | None = None  # the event (or request) that caused this one
    v: int = 1


class OrderSpec(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What the client asked for, normalised to base units."""

    order_type: OrderType
    token_in: str
    token_out: str
    amount_in: int
    slippage_bps: int
    client_order_id: str | None = None
    request_hash: str  # digest of the normalised request, to tell a retry from a conflict
    #: Limit orders: GTC | GTD | IOC. Sniper orders rest until their pool launches.
    time_in_force: str | None = None
    expires_at: int | None = None  # ms since epoch (GTD limit orders, sniper orders)
    #: The client's limit (tokenOut per tokenIn) or sniper maxPrice (tokenIn per tokenOut), as sent.
    limit_price: str | None = None
    #: The least output the order accepts, in tokenOut base units, derived from the price above.
    min_out: int | None = None
    #: The account that submitted the order: the only one that may see or touch it.
    account: str = ""


class QuoteSnapshot(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One venue's quote as the router saw it when deciding."""

    venue: str
    pool_id: str
    amount_in: int
    amount_out: int
    fee: int  # in token_in base units
    price_impact_bps: int
    fillable: bool = True


class Leg(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One swap through one pool."""

    venue: str
    pool_id: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    fee: int  # in this leg's token_in base units
    price_impact_bps: int = 0


class Path(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A share of the order swapped through one or more legs in a row (a hop each)."""

    amount_in: int
    amount_out: int
    legs: tuple[Leg, ...]


class Candidate(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A route the router considered, so a client can see why the winner won."""

    kind: str  # direct | split | multihop
    description: str  # e.g. "meteora-dlmm", "raydium-cpmm 60% + meteora-dlmm 40%", "SOL->USDC->BONK"
    amount_out: int
    fillable: bool = True
    paths: tuple[Path, ...] = ()


class Route(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The routing decision: where the order trades and the floor it accepts.

    `venue`/`pool_id` name the single pool of a direct route, or describe a split or
    multi-hop route; `paths` always lists what the transaction will swap.
    """

    venue: str
    pool_id: str
    amount_in: int
    expected_out: int
    min_out: int
    fee: int
    price_impact_bps: int
    slot: int
    quotes: tuple[QuoteSnapshot, ...]
    kind: str = "direct"  # direct | split | multihop
    paths: tuple[Path, ...] = ()
    #: Output gained over the best single-venue direct route, in basis points.
    gain_bps: int = 0
    candidates: tuple[Candidate, ...] = ()


class OrderAccepted(Event, frozen=True, kw_only=True):
    order: OrderSpec
    #: ms since epoch: the order exists only if the log stored this event by then (by the
    #: log's own timestamp). The gateway gives up waiting at this time, so an event a
    #: client was told failed, stored later, is refused instead of executed. None: no deadline.
    accept_by: int | None = None


class RoutingStarted(Event, frozen=True, kw_only=True):
    pass


class OrderRouted(Event, frozen=True, kw_only=True):
    route: Route


class TransactionBuilt(Event, frozen=True, kw_only=True):
    attempt: int
    signature: str
    blockhash: str
    blockhash_slot: int
    last_valid_slot: int
    fee_payer: str
    compute_unit_limit: int
    compute_unit_price: int  # micro-lamports per compute unit
    priority_fee_lamports: int
    instructions: tuple[str, ...]
    wraps_sol: bool = False
    unwraps_sol: bool = False


class TransactionSubmitted(Event, frozen=True, kw_only=True):
    attempt: int
    signature: str
    slot: int
    already_processed: bool = False  # the chain had it already: a recovered submission


class AttemptFailed(Event, frozen=True, kw_only=True):
    """A transient failure: the attempt can never land, so a new one may be built."""

    attempt: int
    signature: str | None
    kind: str  # node_busy | blockhash_not_found | blockhash_expired | dropped
    reason: str
    retry_at: int  # ms since epoch: not before this time


class OrderConfirmed(Event, frozen=True, kw_only=True):
    signature: str
    slot: int
    amount_out: int


class OrderFailed(Event, frozen=True, kw_only=True):
    code: str  # no_route | slippage_exceeded | attempts_exhausted | chain_error | accept_deadline_missed | ...
    reason: str


class OrderOpened(Event, frozen=True, kw_only=True):
    """A limit or sniper order now rests until its trigger."""

    trigger: str  # limit_price | pool_launch
    pair: str


class OrderTriggered(Event, frozen=True, kw_only=True):
    """A resting order's condition held; it is routed now."""

    slot: int
    reason: str
    best_out: int | None = None  # the executable output that met the limit


class OrderExpired(Event, frozen=True, kw_only=True):
    reason: str


class OrderCancelled(Event, frozen=True, kw_only=True):
    reason: str = "cancelled by client"


OrderEvent = (
    OrderAccepted
    | RoutingStarted
    | OrderRouted
    | TransactionBuilt
    | TransactionSubmitted
    | AttemptFailed
    | OrderConfirmed
    | OrderFailed
    | OrderOpened
    | OrderTriggered
    | OrderExpired
    | OrderCancelled
)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        OrderAccepted,
        RoutingStarted,
        OrderRouted,
        TransactionBuilt,
        TransactionSubmitted,
        AttemptFailed,
        OrderConfirmed,
        OrderFailed,
        OrderOpened,
        OrderTriggered,
        OrderExpired,
        OrderCancelled,
    )
}

# (event type, from version) -> function rewriting the raw mapping to the next version.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(OrderEvent)
_raw_decoder = msgspec.json.Decoder(dict[str, Any])


def encode(event: Event) -> bytes:
    """Serialise an event for the log."""
    return _encoder.encode(event)


def decode(data: bytes) -> OrderEvent:
    """Deserialise an event from the log, upcasting older versions first."""
    if UPCASTERS:
        raw = _raw_decoder.decode(data)
        key = (raw.get("event"), raw.get("v", 1))
        if key in UPCASTERS:
            while key in UPCASTERS:
                raw = UPCASTERS[key](raw)
                key = (raw.get("event"), raw.get("v", 1))
            return msgspec.convert(raw, OrderEvent)
    return _decoder.decode(data)


def to_builtins(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready mapping (camelCase keys, the `event` tag included)."""
    return msgspec.to_builtins(event)


def event_type(event: Event) -> str:
    return type(event).__name__
