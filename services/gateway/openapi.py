"""The parts of the OpenAPI schema Litestar cannot infer from the route handlers.

Responses are inferred from the handlers' return types (the Structs in `models`). What is
left is said here, once:

- the order body, which the POST handlers parse from raw bytes with `intake.parse_order`
  (for exact field-naming errors), so Litestar never sees its type: one schema per order
  type, in `components.requestBodies`;
- every error status an operation can answer, each with the real `ErrorBody`;
- the API-key security schemes and the rate-limit headers of a 429.

Routes take `responses=errors(...)` and `operation_class=ApiOperation` (or
`OrderSubmission`); `COMPONENTS` and `SECURITY_SCHEMES` go into the app's `OpenAPIConfig`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)

from services.gateway.intake import CLIENT_ORDER_ID, DEFAULT_SLIPPAGE_BPS, FIELDS, MAX_SLIPPAGE_BPS, TIME_IN_FORCE
from services.gateway.models import ErrorBody
from services.gateway.terms import MAX_EXPIRY_MS
from shared.market.tokens import TOKENS

ORDER_BODY = "Order"

# --- Errors ------------------------------------------------------------------------------

_ERRORS: dict[int, tuple[str, ErrorBody]] = {
    400: (
        "Bad input: malformed JSON, a missing or invalid field or parameter; `field` names it.",
        ErrorBody(error="invalid_field", detail="slippageBps must be between 0 and 5000 (got 9000)", field="slippageBps"),
    ),
    401: (
        "No API key, or one the gateway does not know. Send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
        ErrorBody(error="unauthorized", detail="a valid API key is required", field="Authorization"),
    ),
    404: (
        "No such order (or no quotes for the pair).",
        ErrorBody(error="order_not_found", detail="no order with id 'ord_x'", field="orderId"),
    ),
    408: (
        "The request body did not arrive in time.",
        ErrorBody(error="request_timeout", detail="the request body did not arrive in time"),
    ),
    409: (
        "Conflict: a `clientOrderId` reused with a different body, or an order that can no longer be cancelled.",
        ErrorBody(
            error="not_cancellable",
            detail="the transaction was submitted to the chain; it can no longer be cancelled",
            order_id="ord_01J0000000000000000000000",
            status="submitted",
        ),
    ),
    413: (
        "The request body is larger than the limit.",
        ErrorBody(error="body_too_large", detail="request body is larger than the limit"),
    ),
    415: (
        "The request body is not `application/json`.",
        ErrorBody(error="unsupported_media_type", detail="send the body as application/json"),
    ),
    429: (
        "Too many requests for this API key; retry after `Retry-After` seconds.",
        ErrorBody(error="too_many_requests", detail="rate limit exceeded; retry later"),
    ),
    503: (
        "The event log or the read model is unavailable for a moment; retry.",
        ErrorBody(error="unavailable", detail="the event log is unavailable; retry shortly"),
    ),
}

SUBMISSION_UNAVAILABLE = (
    "The event log did not confirm the order within the acceptance deadline (`orderId` names the order it "
    "would be). `not_accepted`: the log does not hold it, and never will in time; it will not execute. "
    "`unavailable`: the log could not be read, so the order may exist. Either way retry after `Retry-After` "
    "seconds with the same `clientOrderId`: the answer is then the order if it exists, or a new acceptance; "
    "an order that reached the log after its deadline shows status `failed` with `failureCode` "
    "`accept_deadline_missed` and never executes (submit again with a new `clientOrderId`)."
)
_NOT_ACCEPTED = ErrorBody(
    error="not_accepted",
    detail="the event log did not store the order within 3000 ms; it was not accepted and will not execute. "
    "Retry with the same clientOrderId",
    order_id="ord_01J0000000000000000000000",
)

#: What every /api operation may answer besides its own errors.
API_ERRORS = (401, 429)


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """`responses=` for a route: each status with its description, the ErrorBody schema and an example."""
    specs = {}
    for status in sorted(set(statuses)):
        description, example = _ERRORS[status]
        specs[status] = ResponseSpec(
            data_container=ErrorBody,
            description=description,
            generate_examples=False,
            examples=[Example(summary=example.detail, value=_wire(example))],
        )
    return specs


def _wire(body: ErrorBody) -> dict:
    return msgspec.to_builtins(body)


def query_schema(type: OpenAPIType = OpenAPIType.STRING, **fields) -> dict:
    """`schema_extra=` for a query parameter the handler reads as text to name it in its own 400.

    A query parameter is a value or absent, never null; `fields` say what the handler accepts.
    """
    return {"one_of": None, "type": type, **fields}


# --- Security and rate limits -----------------------------------------------------------------

SECURITY_SCHEMES = {
    "bearerKey": SecurityScheme(type="http", scheme="bearer", description="`Authorization: Bearer <API key>`"),
    "apiKeyHeader": SecurityScheme(
        type="apiKey", name="X-API-Key", security_scheme_in="header", description="`X-API-Key: <API key>`"
    ),
}
# Either scheme will do.
SECURITY = [{"bearerKey": []}, {"apiKeyHeader": []}]

_INTEGER = Schema(type=OpenAPIType.INTEGER, minimum=0)
RATE_LIMIT_HEADERS = {
    "Retry-After": OpenAPIHeader(schema=_INTEGER, required=True, description="Seconds to wait before retrying"),
    "RateLimit-Limit": OpenAPIHeader(schema=_INTEGER, description="Requests allowed in the window"),
    "RateLimit-Remaining": OpenAPIHeader(schema=_INTEGER, description="Requests left in the window"),
    "RateLimit-Reset": OpenAPIHeader(schema=_INTEGER, description="Seconds until the window resets"),
}


@dataclass
class ApiOperation(Operation):
    """An /api operation: behind an API key, rate-limited, and answering only `ErrorBody` errors."""

    def __post_init__(self) -> None:
        self.security = SECURITY
        responses = self.responses or {}
        # Litestar adds a 400 with its own ValidationException body to every operation that
        # has parameters. The gateway never sends that body; an operation that can answer
        # 400 declares it through `errors()`, whose schema is a reference to ErrorBody.
        default_400 = responses.get("400")
        if default_400 is not None and not _refers(default_400):
            del responses["400"]
        if "429" in responses:
            responses["429"].headers = RATE_LIMIT_HEADERS
        if "503" in responses:
            responses["503"].headers = {"Retry-After": RATE_LIMIT_HEADERS["Retry-After"]}


@dataclass
class OrderSubmission(ApiOperation):
    """POST of an order: the body is one of the order types (`components.requestBodies.Order`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = Reference(ref=f"#/components/requestBodies/{ORDER_BODY}")
        # The handler's status is 202; a retried clientOrderId answers the same body with 200.
        accepted = self.responses["202"]
        accepted.description = "Accepted: the order's first event is durably in the log"
        self.responses["200"] = replace(
            accepted, description="The order a retried `clientOrderId` (with the same body) already created"
        )
        unavailable = self.responses["503"]
        unavailable.description = SUBMISSION_UNAVAILABLE
        media = unavailable.content["application/json"]
        media.examples = {
            "not_accepted": Example(summary=_NOT_ACCEPTED.detail, value=_wire(_NOT_ACCEPTED)),
            **(media.examples or {}),
        }


def _refers(response) -> bool:
    content = response.content or {}
    return any(isinstance(media.schema, Reference) for media in content.values())


# --- The order body -------------------------------------------------------------------------

_DECIMAL = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$"


def _decimal(description: str) -> Schema:
    """A positive decimal: a plain decimal string (no exponent) or a JSON number."""
    return Schema(
        one_of=[
            Schema(type=OpenAPIType.STRING, pattern=_DECIMAL, min_length=1, max_length=64),
            Schema(type=OpenAPIType.NUMBER, exclusive_minimum=0),
        ],
        description=description,
    )


def _expiry(description: str) -> Schema:
    return Schema(
        one_of=[
            Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME, description="ISO-8601 with a time zone"),
            Schema(type=OpenAPIType.INTEGER, minimum=0, description="ms since the Unix epoch"),
            Schema(type=OpenAPIType.NULL),
        ],
        description=f"{description}; at most {MAX_EXPIRY_MS // 86_400_000} days ahead",
    )


def _any_case(symbol: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in symbol)


# What `get_token` accepts: a known symbol in any case, or a known mint address.
_TOKEN = Schema(
    any_of=[
        Schema(type=OpenAPIType.STRING, enum=list(TOKENS)),
        Schema(type=OpenAPIType.STRING, pattern=r"^\s*(" + "|".join(map(_any_case, TOKENS)) + r")\s*$"),
        Schema(type=OpenAPIType.STRING, enum=[token.mint for token in TOKENS.values()]),
    ]
)


def _token(description: str) -> Schema:
    return replace(_TOKEN, description=description + "; a token symbol (any case) or its mint address")


def _common(order_type: str) -> dict[str, Schema]:
    return {
        "orderType": Schema(
            type=OpenAPIType.STRING,
            const=order_type,
            description="market when omitted" if order_type == "market" else None,
        ),
        "tokenIn": _token("Token sold"),
        "tokenOut": _token("Token bought, not tokenIn"),
        "amount": _decimal("Amount of tokenIn in token units, within its decimals, more than zero"),
        "slippageBps": Schema(
            type=OpenAPIType.INTEGER,
            minimum=0,
            maximum=MAX_SLIPPAGE_BPS,
            default=DEFAULT_SLIPPAGE_BPS if order_type != "sniper" else None,
            description="Largest accepted shortfall from the quoted output, in basis points"
            + ("; required for a sniper order" if order_type == "sniper" else ""),
        ),
        "clientOrderId": Schema(
            one_of=[
                Schema(type=OpenAPIType.STRING, pattern=CLIENT_ORDER_ID.pattern),
                Schema(type=OpenAPIType.NULL),
            ],
            description="Idempotency key: the same key and body answer the same order (200); another body, 409",
        ),
    }


def _order_schema(order_type: str, title: str, extra: dict[str, Schema], required: list[str]) -> Schema:
    properties = _common(order_type) | extra
    assert set(properties) == FIELDS[order_type], "the schema must list exactly what parse_order accepts"
    return Schema(
        type=OpenAPIType.OBJECT,
        title=title,
        properties=properties,
        required=required,
        additional_properties=False,
    )


MARKET = _order_schema("market", "MarketOrder", {}, ["tokenIn", "tokenOut", "amount"])
LIMIT = _order_schema(
    "limit",
    "LimitOrder",
    {
        "limitPrice": _decimal("Least tokenOut per tokenIn the order accepts"),
        "timeInForce": Schema(
            type=OpenAPIType.STRING,
            enum=list(TIME_IN_FORCE),
            default="GTC",
            description="GTC rests until filled or cancelled; GTD until expiresAt; IOC fills now or expires",
        ),
        "expiresAt": _expiry("When a GTD order expires; required for GTD and refused otherwise; in the future"),
    },
    ["orderType", "tokenIn", "tokenOut", "amount", "limitPrice"],
)
SNIPER = _order_schema(
    "sniper",
    "SniperOrder",
    {
        "maxPrice": Schema(
            one_of=[*_decimal("").one_of, Schema(type=OpenAPIType.NULL)],
            description="Most tokenIn per tokenOut the order pays once the pool launches (none: any price)",
        ),
        "expiresAt": _expiry("When the order stops waiting for the pool to launch; in the future"),
    },
    ["orderType", "tokenIn", "tokenOut", "amount", "slippageBps"],
)

# A week after the schema was built: an example must stay one the gateway accepts.
_EXAMPLE_EXPIRY = (dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=7)).isoformat().replace(
    "+00:00", "Z"
)
_EXAMPLES = {
    "market": Example(
        summary="Market order",
        value={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", "slippageBps": 50, "clientOrderId": "bot-7-0001"},
    ),
    "limit": Example(
        summary="Limit order, good till a date",
        value={
            "orderType": "limit",
            "tokenIn": "SOL",
            "tokenOut": "USDC",
            "amount": "2",
            "limitPrice": "180.5",
            "timeInForce": "GTD",
            "expiresAt": _EXAMPLE_EXPIRY,
        },
    ),
    "sniper": Example(
        summary="Sniper order on a token launch",
        value={"orderType": "sniper", "tokenIn": "SOL", "tokenOut": "PUMP", "amount": "0.5", "slippageBps": 300},
    ),
}

ORDER_REQUEST = RequestBody(
    required=True,
    description="A swap order; `orderType` picks the schema (market when omitted). Unknown fields are refused.",
    content={
        "application/json": OpenAPIMediaType(
            schema=Schema(one_of=[MARKET, LIMIT, SNIPER]),
            examples=_EXAMPLES,
        )
    },
)

# Component schemas are generated from the handlers' types; these parts are not types.
COMPONENTS = Components(request_bodies={ORDER_BODY: ORDER_REQUEST}, security_schemes=SECURITY_SCHEMES)
