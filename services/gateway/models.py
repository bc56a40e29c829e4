"""What the gateway answers over HTTP, as typed Structs, so the OpenAPI schema documents it.

These are the public response shapes, distinct from the internal events: camelCase on the
wire, amounts as decimal strings in token units, times as ISO-8601 UTC strings. A field
that has no value yet is present and `null` (never absent), so a client can rely on
every key of an order view. Error bodies are the exception: they carry only what applies.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.events import OrderType
from shared.orders import Status

RouteKind = Literal["direct", "split", "multihop"]


class Answer(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of every answer: camelCase keys on the wire."""


class QuoteView(Answer):
    """One venue's quote as the router saw it when routing the order."""

    venue: str
    pool_id: str
    amount_in: str
    amount_out: str
    fee: str  # in tokenIn units
    price_impact_bps: int
    fillable: bool = True


class LegView(Answer):
    """One swap through one pool; amounts count in the leg's own tokens."""

    venue: str
    pool_id: str
    token_in: str
    token_out: str
    amount_in: str
    amount_out: str
    fee: str
    price_impact_bps: int = 0


class PathView(Answer):
    """A share of the order swapped through one or more legs in a row."""

    amount_in: str
    amount_out: str
    legs: list[LegView]


class CandidateView(Answer):
    """A route the router considered."""

    kind: RouteKind
    description: str
    amount_out: str
    fillable: bool = True
    paths: list[PathView] = []


class OrderView(Answer):
    """One order as the read model knows it (GET /api/orders/{orderId})."""

    order_id: str
    client_order_id: str | None
    order_type: OrderType
    status: Status
    progress: int  # 0-100, where a progress bar stands in this status
    token_in: str
    token_out: str
    amount_in: str
    slippage_bps: int
    venue: str | None
    pool_id: str | None
    expected_out: str | None
    min_out: str | None
    fee: str | None
    price_impact_bps: int | None
    quotes: list[QuoteView]
    route_kind: RouteKind | None
    gain_bps: int | None
    paths: list[PathView]
    candidates: list[CandidateView]
    limit_price: str | None
    time_in_force: Literal["GTC", "GTD", "IOC"] | None
    expires_at: str | None
    floor_out: str | None
    amount_out: str | None
    executed_price: str | None
    tx_signature: str | None
    slot: int | None
    attempts: int
    last_error: str | None
    failure_code: str | None
    failure_reason: str | None
    created_at: str
    updated_at: str
    last_seq: int


class Submitted(OrderView):
    """The answer to a submission: the order, and where to follow it."""

    ws_url: str
    status_url: str
    created: bool  # false when a retried clientOrderId answered an existing order


class Cancelled(OrderView):
    """The answer to a cancel: the order, and whether this call cancelled it."""

    cancelled: bool


class OrderPage(Answer):
    """A page of orders, newest first."""

    orders: list[OrderView]
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class StreamMessage(Answer):
    """One event of an order, as the stream and the history send it."""

    type: Status  # the status after the event (seed clients switch on it)
    order_id: str
    seq: int
    status: Status
    event: str  # the event type, e.g. OrderRouted
    event_id: str
    message: str
    progress: int
    timestamp: str
    data: dict[str, Any]  # the event's own fields, amounts as decimal strings


class EventHistory(Answer):
    """An order's full event history, oldest first."""

    order_id: str
    events: list[StreamMessage]


class VenueQuote(Answer):
    """A venue's latest quote for a pair, as the router published it."""

    pair: str
    venue: str
    pool_id: str
    slot: int
    timestamp: int  # ms since the Unix epoch
    token_in: str
    token_out: str
    amount_in: str
    amount_out: str
    fee: str
    price_impact_bps: int
    fillable: bool
    spot_price: str | None = None  # only on the periodic one-unit quotes
    executed_price: str | None = None


class PairQuotes(Answer):
    """The latest quote of every venue for a pair."""

    pair: str
    quotes: list[VenueQuote]


class ErrorBody(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Every error answer. Optional keys appear only when they apply.

    A key an `ApiError` carries in `extra` must be declared here: an undeclared one would
    break the documented schema, so it fails loudly instead.
    """

    error: str  # a stable machine-readable code, e.g. invalid_field, order_not_found
    detail: str  # a sentence for a person
    field: str | msgspec.UnsetType = msgspec.UNSET  # the request field (or body, or header) at fault
    order_id: str | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET  # the order's current status (409 not_cancellable)
