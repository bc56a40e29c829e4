"""What clients see: order views and stream messages, amounts as decimal strings."""

from __future__ import annotations

import datetime as dt
from decimal import Context, Decimal
from typing import Any

from shared import events as ev
from shared.amounts import format_amount
from shared.market.tokens import UnknownToken, get_token
from shared.orders import PROGRESS, OrderState

_ENVELOPE = {"orderId", "seq", "eventId", "occurredAt", "correlationId", "causationId", "v", "event"}
# Amount fields and the side of the swap whose token they count.
_IN_FIELDS = {"amountIn", "fee"}
_OUT_FIELDS = {"amountOut", "expectedOut", "minOut"}
_PRICE = Context(prec=12)
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


def order_view(state: OrderState) -> dict[str, Any]:
    """The read-model view of one order (GET /api/orders/{id})."""
    spec = state.spec
    tin, tout = spec.token_in, spec.token_out
    route = state.route
    fmt_in = _decimals(tin)
    fmt_out = _decimals(tout)
    return {
        "orderId": state.order_id,
        "clientOrderId": spec.client_order_id,
        "orderType": spec.order_type,
        "status": state.status,
        "progress": PROGRESS.get(state.status, 0),
        "tokenIn": tin,
        "tokenOut": tout,
        "amountIn": format_amount(spec.amount_in, fmt_in),
        "slippageBps": spec.slippage_bps,
        "venue": route.venue if route else None,
        "poolId": route.pool_id if route else None,
        "expectedOut": format_amount(route.expected_out, fmt_out) if route else None,
        "minOut": format_amount(route.min_out, fmt_out) if route else None,
        "fee": format_amount(route.fee, fmt_in) if route else None,
        "priceImpactBps": route.price_impact_bps if route else None,
        "quotes": _amounts(ev.to_builtins(route)["quotes"], tin, tout) if route else [],
        "routeKind": route.kind if route else None,
        "gainBps": route.gain_bps if route else None,
        "paths": _amounts(ev.to_builtins(route)["paths"], tin, tout) if route else [],
        "candidates": _amounts(ev.to_builtins(route)["candidates"], tin, tout) if route else [],
        "limitPrice": spec.limit_price,
        "timeInForce": spec.time_in_force,
        "expiresAt": iso(spec.expires_at),
        "floorOut": format_amount(spec.min_out, fmt_out) if spec.min_out is not None else None,
        "amountOut": format_amount(state.amount_out, fmt_out) if state.amount_out is not None else None,
        "executedPrice": price(spec.amount_in, state.amount_out, tin, tout) if state.amount_out is not None else None,
        "txSignature": state.signature or (state.transaction.signature if state.transaction else None),
        "slot": state.slot,
        "attempts": state.attempts,
        "lastError": state.last_failure,
        "failureCode": state.failure_code,
        "failureReason": state.failure_reason,
        "createdAt": iso(state.created_at),
        "updatedAt": iso(state.updated_at),
        "lastSeq": state.seq,
    }


def event_data(event: ev.OrderEvent, spec: ev.OrderSpec) -> dict[str, Any]:
    raw = ev.to_builtins(event)
    data = {k: v for k, v in raw.items() if k not in _ENVELOPE}
    return _amounts(data, spec.token_in, spec.token_out)


def stream_message(event: ev.OrderEvent, state: OrderState) -> dict[str, Any]:
    """One event as a stream message; `state` is the order right after it."""
    return {
        "type": state.status,
        "orderId": event.order_id,
        "seq": event.seq,
        "status": state.status,
        "event": type(event).__name__,
        "eventId": event.event_id,
        "message": describe(event, state),
        "progress": PROGRESS.get(state.status, 0),
        "timestamp": iso(event.occurred_at),
        "data": event_data(event, state.spec),
    }


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
                chosen = next((c for c in r.candidates if c.kind == r.kind and c.amount_out == r.expected_out), None)
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
