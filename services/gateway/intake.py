"""Turning a submitted order body into a normalised `OrderSpec`, or a 4xx naming the field."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec

from services.gateway.errors import ApiError, bad_request, clip
from services.gateway.terms import MAX_OUTPUT, min_out_for_limit, min_out_for_max_price, parse_expiry, parse_price
from shared.amounts import AmountError, parse_amount
from shared.events import OrderSpec
from shared.market.tokens import TOKENS, UnknownToken, get_token

SUPPORTED_TYPES = ("market", "limit", "sniper")
COMMON_FIELDS = frozenset({"orderType", "tokenIn", "tokenOut", "amount", "slippageBps", "clientOrderId"})
FIELDS = {
    "market": COMMON_FIELDS,
    "limit": COMMON_FIELDS | {"limitPrice", "timeInForce", "expiresAt"},
    "sniper": COMMON_FIELDS | {"maxPrice", "expiresAt"},
}
TIME_IN_FORCE = ("GTC", "GTD", "IOC")
MAX_SLIPPAGE_BPS = 5_000
DEFAULT_SLIPPAGE_BPS = 50
# Always `fullmatch`: `$` lets a trailing newline through.
CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_decoder = msgspec.json.Decoder()


def parse_order(body: bytes, now_ms: int) -> OrderSpec:
    """Validate a POST /api/orders body. Raises `ApiError` (400) naming the first bad field."""
    if not body.strip():
        raise ApiError(400, "invalid_body", "request body is empty; send a JSON object", field="body")
    data = _decode(body)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "request body must be a JSON object", field="body")
    order_type = data.get("orderType", "market")
    if not isinstance(order_type, str):
        raise bad_request("orderType", "orderType must be a string")
    if order_type not in SUPPORTED_TYPES:
        raise bad_request("orderType", f"orderType {clip(order_type)} is not supported; use one of: {', '.join(SUPPORTED_TYPES)}")
    unknown = sorted(set(data) - FIELDS[order_type])
    if unknown:
        known = ", ".join(sorted(FIELDS[order_type]))
        name = unknown[0] if len(unknown[0]) <= 64 else clip(unknown[0])
        raise bad_request(name, f"unknown field {clip(unknown[0])} for a {order_type} order; accepted fields: {known}")

    token_in = _token(data, "tokenIn")
    token_out = _token(data, "tokenOut")
    if token_in.symbol == token_out.symbol:
        raise bad_request("tokenOut", f"tokenIn and tokenOut are both {token_in.symbol}; a swap needs two different tokens")

    if "amount" not in data:
        raise bad_request("amount", "amount is required (a decimal string or number of tokenIn units)")
    raw_amount = data["amount"]
    if isinstance(raw_amount, bool) or not isinstance(raw_amount, (int, float, str)):
        raise bad_request("amount", "amount must be a decimal string or a number")
    try:
        amount_in = parse_amount(raw_amount, token_in.decimals)
    except AmountError as exc:
        raise bad_request("amount", f"amount {clip(raw_amount)}: {exc}") from None

    slippage = data.get("slippageBps", DEFAULT_SLIPPAGE_BPS)
    if isinstance(slippage, bool) or not isinstance(slippage, int):
        raise bad_request("slippageBps", "slippageBps must be an integer number of basis points")
    if not 0 <= slippage <= MAX_SLIPPAGE_BPS:
        raise bad_request("slippageBps", f"slippageBps must be between 0 and {MAX_SLIPPAGE_BPS} (got {clip(slippage)})")

    client_order_id = data.get("clientOrderId")
    if client_order_id is not None and (
        not isinstance(client_order_id, str) or not CLIENT_ORDER_ID.fullmatch(client_order_id)
    ):
        raise bad_request("clientOrderId", "clientOrderId must be 1-64 characters of letters, digits and _ . : -")

    terms = _terms(order_type, data, amount_in, token_in.decimals, token_out.decimals, now_ms)
    normalised = {
        "orderType": order_type,
        "tokenIn": token_in.symbol,
        "tokenOut": token_out.symbol,
        "amountIn": amount_in,
        "slippageBps": slippage,
        **{k: v for k, v in terms.items() if v is not None},
    }
    digest = hashlib.sha256(msgspec.json.encode(normalised, order="sorted")).hexdigest()
    return OrderSpec(
        order_type=order_type,
        token_in=token_in.symbol,
        token_out=token_out.symbol,
        amount_in=amount_in,
        slippage_bps=slippage,
        client_order_id=client_order_id,
        request_hash=digest,
        **terms,
    )


def _decode(body: bytes) -> Any:
    """The body as JSON, or a 400 naming `body` for anything the decoder refuses.

    The decoder refuses in more ways than `DecodeError`: nesting deeper than it recurses
    (`RecursionError`), bytes that are not UTF-8 (`UnicodeDecodeError`), numbers beyond
    64 bits (`ValidationError`). NaN and Infinity literals are not JSON and are refused.
    """
    try:
        return _decoder.decode(body)
    except RecursionError:
        detail = "request body is nested too deeply"
    except UnicodeDecodeError:
        detail = "request body is not UTF-8"
    except msgspec.DecodeError as exc:  # ValidationError included: numbers out of range
        detail = f"request body is not valid JSON: {str(exc)[:120]}"
    raise ApiError(400, "malformed_json", detail, field="body")


def _terms(order_type: str, data: dict[str, Any], amount_in: int, dec_in: int, dec_out: int, now_ms: int) -> dict:
    """The type-specific fields of a limit or sniper order, normalised."""
    if order_type == "market":
        return {}
    expires_at = parse_expiry("expiresAt", data["expiresAt"], now_ms) if data.get("expiresAt") is not None else None
    if order_type == "limit":
        if data.get("limitPrice") is None:
            raise bad_request("limitPrice", "limitPrice is required for a limit order (least tokenOut per tokenIn)")
        limit = parse_price("limitPrice", data["limitPrice"])
        tif = data.get("timeInForce", "GTC")
        if tif not in TIME_IN_FORCE:
            raise bad_request("timeInForce", f"timeInForce must be one of: {', '.join(TIME_IN_FORCE)}")
        if tif == "GTD" and expires_at is None:
            raise bad_request("expiresAt", "a GTD order needs expiresAt")
        if tif != "GTD" and expires_at is not None:
            raise bad_request("expiresAt", f"expiresAt applies only to GTD orders, not {tif}")
        min_out = min_out_for_limit(amount_in, dec_in, dec_out, limit)
        price_text = _decimal_text(limit)
    else:
        tif = None
        if "slippageBps" not in data:
            raise bad_request("slippageBps", "slippageBps is required for a sniper order")
        if data.get("maxPrice") is None:
            min_out, price_text = None, None
        else:
            max_price = parse_price("maxPrice", data["maxPrice"])
            min_out = min_out_for_max_price(amount_in, dec_in, dec_out, max_price)
            price_text = _decimal_text(max_price)
    if min_out is not None and min_out > MAX_OUTPUT:
        field = "limitPrice" if order_type == "limit" else "maxPrice"
        raise bad_request(field, f"{field} asks for more output than any pool can hold")
    return {"time_in_force": tif, "expires_at": expires_at, "limit_price": price_text, "min_out": min_out}


def _decimal_text(value: Fraction) -> str:
    return format(Decimal(value.numerator) / Decimal(value.denominator), "f")


def _token(data: dict[str, Any], field: str):
    value = data.get(field)
    if value is None:
        raise bad_request(field, f"{field} is required (one of: {', '.join(sorted(TOKENS))})")
    if not isinstance(value, str):
        raise bad_request(field, f"{field} must be a token symbol string")
    try:
        return get_token(value)
    except UnknownToken:
        raise ApiError(
            400, "unknown_token", f"{field} {clip(value)} is not a known token; known: {', '.join(sorted(TOKENS))}", field=field
        ) from None
