"""What clients see: order views and stream messages, amounts as decimal strings."""

from __future__ import annotations

import datetime as dt
from decimal import Context, Decimal
from typing import Any, TypeVar

import msgspec

from services.gateway.models import CandidateView, OrderView, PathView, QuoteView, StreamMessage
from shared import events as ev
from shared.amounts import format_amount
from shared.market.tokens import UnknownToken, get_token
from shared.orders import PROGRESS, OrderState

_ENVELOPE = {"orderId", "seq", "eventId", "occurredAt", "correlationId", "causationId", "v", "event"}
# Amount fields and the side of the swap whose token they count.
_IN_FIELDS = {"amountIn", "fee"}
_OUT_FIELDS = {"amountOut", "expectedOut", "minOut"}
_PRICE = Context(prec=12)
T = TypeVar("T", bound=OrderView)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC; None for a time no calendar holds.

    Reads must not fail on any stored value: one order with an impossible time would
    otherwise break every listing that includes it.
    """
    if ms is None:
        return None
    try:
        moment = _EPOCH + dt.timedelta(milliseconds=ms)
    except (OverflowError, TypeError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _decimals(symbol: str) -> int:
    """A token's decimals; 0 (base units shown as they are) for one no longer listed."""
    try:
        return get_token(symbol).decimals
    except UnknownToken:
        return 0


def price(amount_in: int, amount_out: int, token_in: str, token_out: str) -> str | None:
    """tokenOut per tokenIn, in token units, to 12 significant digits."""
    if not amount_in:
        return None
    ratio = _PRICE.divide(
        Decimal(amount_out) * (Decimal(10) ** _decimals(token_in)),
        Decimal(amount_in) * (Decimal(10) ** _decimals(token_out)),
    )
    return format(ratio.normalize(), "f")


def _amounts(value: Any, token_in: str, token_out: str) -> Any:
    if isinstance(value, dict):
        # A leg of a multi-hop route counts its amounts in its own tokens.
        token_in = value.get("tokenIn", token_in) if isinstance(value.get("tokenIn"), str) else token_in
        token_out = value.get("tokenOut", token_out) if isinstance(value.get("tokenOut"), str) else token_out
        out = {}
        for key, item in value.items():
            if key in _IN_FIELDS and isinstance(item, int):
                out[key] = format_amount(item, _decimals(token_in))
            elif key in _OUT_FIELDS and isinstance(item, int):
                out[key] = format_amount(item, _decimals(token_out))
            else:
                out[key] = _amounts(item, token_in, token_out)
        return out
    if isinstance(value, (list, tuple)):
        return [_amounts(item, token_in, token_out) for item in value]
    return value


def order_view(state: OrderState) -> OrderView:
    """The read-model view of one order (GET /api/orders/{id})."""
    spec = state.spec
    tin, tout = spec.token_in, spec.token_out
    route = state.route
    fmt_in = _decimals(tin)
    fmt_out = _decimals(tout)
    raw_route = _amounts(ev.to_builtins(route), tin, tout) if route else {}
    return OrderView(
        order_id=state.order_id,
        client_order_id=spec.client_order_id,
        order_type=spec.order_type,
        status=state.status,
        progress=PROGRESS.get(state.status, 0),
        token_in=tin,
        token_out=tout,
        amount_in=format_amount(spec.amount_in, fmt_in),
        slippage_bps=spec.slippage_bps,
        venue=route.venue if route else None,
        pool_id=route.pool_id if route else None,
        expected_out=format_amount(route.expected_out, fmt_out) if route else None,
        min_out=format_amount(route.min_out, fmt_out) if route else None,
        fee=format_amount(route.fee, fmt_in) if route else None,
        price_impact_bps=route.price_impact_bps if route else None,
        quotes=msgspec.convert(raw_route.get("quotes", []), list[QuoteView]),
        route_kind=route.kind if route else None,
        gain_bps=route.gain_bps if route else None,
        paths=msgspec.convert(raw_route.get("paths", []), list[PathView]),
        candidates=msgspec.convert(raw_route.get("candidates", []), list[CandidateView]),
        limit_price=spec.limit_price,
        time_in_force=spec.time_in_force,
        expires_at=iso(spec.expires_at),
        floor_out=format_amount(spec.min_out, fmt_out) if spec.min_out is not None else None,
        amount_out=format_amount(state.amount_out, fmt_out) if state.amount_out is not None else None,
        executed_price=price(spec.amount_in, state.amount_out, tin, tout) if state.amount_out is not None else None,
        tx_signature=state.signature or (state.transaction.signature if state.transaction else None),
        slot=state.slot,
        attempts=state.attempts,
        last_error=state.last_failure,
        failure_code=state.failure_code,
        failure_reason=state.failure_reason,
        created_at=iso(state.created_at),
        updated_at=iso(state.updated_at),
        last_seq=state.seq,
    )


def extend(view: OrderView, answer: type[T], **fields: Any) -> T:
    """`view` as a larger answer (a submission, a cancel) with the extra `fields`."""
    return answer(**msgspec.structs.asdict(view), **fields)


def event_data(event: ev.OrderEvent, spec: ev.OrderSpec) -> dict[str, Any]:
    raw = ev.to_builtins(event)
    data = {k: v for k, v in raw.items() if k not in _ENVELOPE}
    return _amounts(data, spec.token_in, spec.token_out)


def stream_message(event: ev.OrderEvent, state: OrderState) -> StreamMessage:
    """One event as a stream message; `state` is the order right after it."""
    return StreamMessage(
        type=state.status,
        order_id=event.order_id,
        seq=event.seq,
        status=state.status,
        event=type(event).__name__,
        event_id=event.event_id,
        message=describe(event, state),
        progress=PROGRESS.get(state.status, 0),
        timestamp=iso(event.occurred_at),
        data=event_data(event, state.spec),
    )


def describe(event: ev.OrderEvent, state: OrderState) -> str:
    """A sentence a person can read in a log or a UI."""
    spec = state.spec
    tin, tout = spec.token_in, spec.token_out
    dec_in, dec_out = _decimals(tin), _decimals(tout)
    match event:
        case ev.OrderAccepted():
            return f"Order accepted: swap {format_amount(spec.amount_in, dec_in)} {tin} for {tout}"
        case ev.RoutingStarted():
            return f"Comparing quotes for {tin}/{tout} across venues"
        case ev.OrderRouted(route=r):
            others = ", ".join(f"{q.venue} {format_amount(q.amount_out, dec_out)}" for q in r.quotes) or "none direct"
            where = r.venue
            if r.kind != "direct":
                chosen = next((c for c in r.candidates if c.paths == r.paths), None)  # ties in output happen
                where = f"{r.kind} {chosen.description}" if chosen else r.kind
                if r.gain_bps:
                    where += f" (+{r.gain_bps} bps over the best single venue)"
            return (
                f"Routed to {where}: expect {format_amount(r.expected_out, dec_out)} {tout}, "
                f"minimum {format_amount(r.min_out, dec_out)} (quotes: {others})"
            )
        case ev.TransactionBuilt():
            wrap = " with SOL wrap" if event.wraps_sol else (" with SOL unwrap" if event.unwraps_sol else "")
            return f"Transaction built{wrap} (attempt {event.attempt}, priority fee {event.priority_fee_lamports} lamports)"
        case ev.TransactionSubmitted():
            return f"Transaction {event.signature[:12]}... submitted in slot {event.slot}"
        case ev.AttemptFailed():
            return f"Attempt {event.attempt} failed: {event.reason}; retrying"
        case ev.OrderConfirmed():
            return f"Confirmed in slot {event.slot}: received {format_amount(event.amount_out, dec_out)} {tout}"
        case ev.OrderFailed():
            return f"Failed: {event.reason}"
        case ev.OrderOpened(trigger="pool_launch"):
            return f"Waiting for a {tin}/{tout} pool to launch"
        case ev.OrderOpened():
            floor = format_amount(spec.min_out or 0, dec_out)
            return f"Resting: fires when {format_amount(spec.amount_in, dec_in)} {tin} buys at least {floor} {tout}"
        case ev.OrderTriggered():
            return f"Triggered in slot {event.slot}: {event.reason}"
        case ev.OrderExpired():
            return f"Expired: {event.reason}"
        case ev.OrderCancelled():
            return f"Cancelled: {event.reason}"
    return type(event).__name__
