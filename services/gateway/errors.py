"""Client errors as `{error, detail, field?}` with a 4xx status; never a 5xx for bad input."""

from __future__ import annotations

import asyncio
import logging
import math

import asyncpg
import msgspec
import nats.errors
import nats.js.errors
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, InternalServerException

from services.gateway.models import ErrorBody
from services.gateway.reads import ReadModelUnavailable
from shared.eventlog import StaleRead

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        field: str | None = None,
        extra: dict | None = None,
        extra_headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field
        self.extra = extra or {}
        self.headers = extra_headers or {}


def clip(value: object, limit: int = 64) -> str:
    """`repr(value)` cut to `limit` characters: details never echo unbounded input back."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # no need to repr megabytes to show 64 characters
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        return "(a number too long to show)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bad_request(field: str, detail: str, error: str = "invalid_field") -> ApiError:
    return ApiError(400, error, detail, field=field)


_MAX_DETAIL = 512


def _body(error: str, detail: str, field: str | None = None, extra: dict | None = None) -> ErrorBody:
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 1] + "…"
    # `convert` refuses a key ErrorBody does not declare, so the schema stays the truth.
    optional = {"field": field} if field is not None else {}
    return msgspec.convert({"error": error, "detail": detail, **optional, **(extra or {})}, ErrorBody)


def refused(request: Request, status: int, code: str, field: str | None = None, order_id: str | None = None) -> None:
    """One info line per refused request: what was refused and why, never what authenticates it."""
    extra = {"status": status, "code": code, "field": field, "path": request.scope.get("path", "")}
    if order_id is not None:
        extra["orderId"] = order_id
    log.info("request refused", extra=extra)


def on_api_error(request: Request, exc: ApiError) -> Response:
    refused(request, exc.status, exc.error, exc.field, exc.extra.get("orderId"))
    return Response(
        _body(exc.error, exc.detail, exc.field, exc.extra),
        status_code=exc.status,
        media_type=MediaType.JSON,
        headers=exc.headers,
    )


_HTTP_NAMES = {
    400: "bad_request",
    408: "request_timeout",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def on_http_exception(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    detail = exc.detail or "request failed"
    if status == 413:
        detail = "request body is larger than the limit"
    if isinstance(exc, InternalServerException) and detail == "client disconnected prematurely":
        # The client stopped sending its body (or the transport cut off a slow one): its
        # fault, and nobody is left to read the answer.
        status, detail = 408, "the request body did not arrive"
    if status >= 500:
        log.error("server error: %s", detail, extra={"path": request.url.path})
    else:
        refused(request, status, _HTTP_NAMES.get(status, "error"))
    return Response(_body(_HTTP_NAMES.get(status, "error"), detail), status_code=status, media_type=MediaType.JSON)


# The event log (NATS) or the read model (PostgreSQL) not answering for now: the client
# may retry, so 503 rather than 500. OSError covers refused connections and timeouts.
UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    nats.errors.Error,
    nats.js.errors.ServiceUnavailableError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.InterfaceError,
    StaleRead,  # a stream replica behind an event known to be stored
)


def on_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("dependency unavailable: %r", exc, extra={"path": request.url.path})
    return Response(
        _body("unavailable", "the event log or the read model is unavailable; retry shortly"),
        status_code=503,
        media_type=MediaType.JSON,
        headers={"Retry-After": "1"},
    )


def on_read_model_unavailable(_: Request, exc: ReadModelUnavailable) -> Response:
    """Logged once per outage by the read model, not once per request."""
    return Response(
        _body("unavailable", exc.detail),
        status_code=503,
        media_type=MediaType.JSON,
        headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
    )


def on_unexpected(request: Request, exc: Exception) -> Response:
    """A server fault, never a client's: bad input is refused with a 4xx before it gets here."""
    log.exception("unhandled error", extra={"path": request.url.path})
    return Response(_body("internal", "unexpected server error"), status_code=500, media_type=MediaType.JSON)


EXCEPTION_HANDLERS = {
    ApiError: on_api_error,
    HTTPException: on_http_exception,
    **{kind: on_unavailable for kind in UNAVAILABLE},
    ReadModelUnavailable: on_read_model_unavailable,
    Exception: on_unexpected,
}


def log_full() -> ApiError:
    """New orders while the order log is (nearly) full: retry later, nothing was stored."""
    return ApiError(
        503,
        "log_full",
        "the order log is nearly full: new orders are refused until the operator makes room; nothing was stored",
        extra_headers={"Retry-After": "30"},
    )
