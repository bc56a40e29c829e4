"""The engine's public contract as typed Structs: what a client sends and what it gets back.

camelCase on the wire, as the API speaks it. Amounts and prices are `Decimal` here and
decimal strings on the wire, in both directions, so no amount ever passes through a float.
Answers ignore fields they do not know, so a newer server does not break an older client.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Literal

import msgspec

Status = Literal["pending", "open", "routing", "building", "submitted", "confirmed", "failed", "cancelled", "expired"]
TimeInForce = Literal["GTC", "GTD", "IOC"]
#: Statuses after which an order never changes again: its stream closes after this event.
TERMINAL: frozenset[str] = frozenset({"confirmed", "failed", "cancelled", "expired"})

# --- Requests ------------------------------------------------------------------------------


class _Order(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True, tag_field="orderType"):
    """Fields every order type shares; unset optional fields are left out of the body."""

    token_in: str
    token_out: str
    amount: Decimal  # in tokenIn units
    client_order_id: str | None = None  # set by `EngineClient.submit` when left out


class MarketOrder(_Order, tag="market"):
    """Routed and executed at once."""

    slippage_bps: int | None = None  # the server's default: 50


class LimitOrder(_Order, tag="limit"):
    """Rests until `tokenOut` per `tokenIn` reaches `limit_price` (GTC), until `expires_at` (GTD), or not at all (IOC)."""

    limit_price: Decimal
    time_in_force: TimeInForce | None = None  # the server's default: GTC
    expires_at: dt.datetime | int | None = None  # GTD only: an aware datetime or epoch milliseconds
    slippage_bps: int | None = None


class SniperOrder(_Order, tag="sniper"):
    """Rests until a pool for the pair launches, then buys while the price paid stays at or below `max_price`."""

    slippage_bps: int
    max_price: Decimal | None = None  # tokenIn per tokenOut
    expires_at: dt.datetime | int | None = None


Order = MarketOrder | LimitOrder | SniperOrder

# --- Answers -------------------------------------------------------------------------------


class Answer(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of every answer: camelCase keys on the wire."""


class Quote(Answer):
    """One venue's quote for an order's whole size, as the router saw it."""

    venue: str
    pool_id: str
    amount_in: Decimal
    amount_out: Decimal
    fee: Decimal
    price_impact_bps: int
    fillable: bool = True


class Leg(Answer):
    venue: str
    pool_id: str
    token_in: str
    token_out: str
    amount_in: Decimal
    amount_out: Decimal
    fee: Decimal
    price_impact_bps: int = 0


class Path(Answer):
    """A share of the order swapped through one or more legs in a row."""

    amount_in: Decimal
    amount_out: Decimal
    legs: list[Leg]


class OrderView(Answer, kw_only=True):
    """One order as the engine knows it; a field with no value yet is None."""

    order_id: str
    client_order_id: str | None
    order_type: Literal["market", "limit", "sniper"]
    status: Status
    progress: int
    token_in: str
    token_out: str
    amount_in: Decimal
    slippage_bps: int
    venue: str | None = None
    pool_id: str | None = None
    expected_out: Decimal | None = None
    min_out: Decimal | None = None
    fee: Decimal | None = None
    price_impact_bps: int | None = None
    quotes: list[Quote] = []
    route_kind: str | None = None
    gain_bps: int | None = None
    paths: list[Path] = []
    limit_price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    expires_at: str | None = None
    floor_out: Decimal | None = None
    amount_out: Decimal | None = None
    executed_price: Decimal | None = None
    tx_signature: str | None = None
    slot: int | None = None
    attempts: int = 0
    last_error: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    created_at: str
    updated_at: str
    last_seq: int


class Submitted(OrderView, kw_only=True):
    """The answer to a submission; `created` is False when a repeated clientOrderId answered an existing order."""

    ws_url: str
    status_url: str
    created: bool


class Cancelled(OrderView, kw_only=True):
    """The answer to a cancel; `cancelled` is False when the order already was."""

    cancelled: bool


class OrderPage(Answer):
    orders: list[OrderView]
    next_cursor: str | None  # pass back as `cursor`; None on the last page


class Event(Answer):
    """One event of an order, as its stream and its history send it; `seq` rises by one per event."""

    type: str
    order_id: str
    seq: int
    status: Status
    event: str  # e.g. OrderRouted
    event_id: str
    message: str
    progress: int  # 0-100
    timestamp: str
    data: dict[str, Any] = {}

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class EventHistory(Answer):
    order_id: str
    events: list[Event]


class VenueQuote(Answer):
    """A venue's latest quote for a pair, as the router published it."""

    pair: str
    venue: str
    pool_id: str
    slot: int
    timestamp: int  # ms since the Unix epoch
    token_in: str
    token_out: str
    amount_in: Decimal
    amount_out: Decimal
    fee: Decimal
    price_impact_bps: int
    fillable: bool
    spot_price: Decimal | None = None
    executed_price: Decimal | None = None


class PairQuotes(Answer):
    pair: str
    quotes: list[VenueQuote]


class ErrorBody(Answer):
    """Every refusal: a stable `error` code, a sentence, and the field at fault when there is one."""

    error: str
    detail: str
    field: str | None = None
    order_id: str | None = None
    status: Status | None = None


class StreamNotice(Answer):
    """What a stream sends that is not an event: `connection` first, `error` before a refusal."""

    type: str
    status: Status | None = None
    last_seq: int = 0
    error: str | None = None
    field: str | None = None
    detail: str | None = None


def stream_message(raw: str | bytes) -> Event | StreamNotice:
    """One message of an order's stream: an event, or the stream's own notice (`connection`, `error`)."""
    notice = msgspec.json.decode(raw, type=StreamNotice)
    if notice.type in ("connection", "error"):
        return notice
    return msgspec.json.decode(raw, type=Event)


class ApiError(Exception):
    """The API refused a request (or was unavailable): HTTP status, error code, the field at fault, the sentence."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, *,
                 order_id: str | None = None, order_status: str | None = None) -> None:
        super().__init__(f"{status} {code}" + (f" ({field})" if field else "") + f": {message}")
        self.status, self.code, self.message, self.field = status, code, message, field
        self.order_id, self.order_status = order_id, order_status

    @classmethod
    def of(cls, status: int, body: ErrorBody) -> ApiError:
        return cls(status, body.error, body.detail, body.field, order_id=body.order_id, order_status=body.status)
