"""`EngineClient`: the engine's HTTP and WebSocket API as typed async calls.

Two promises a trading client needs, kept here once:

- **A retried submission never makes a second order.** `submit` gives every order a
  `clientOrderId` (a uuid4) when the caller did not, before the first attempt; a retry
  after a lost connection, a timeout or a 5xx sends the same body with the same id, and the
  API answers the order the first attempt created (200) instead of a new one.
- **A watch never loses or repeats an event.** `watch` remembers the last `seq` it
  yielded; after a dropped connection it reconnects with `afterSeq` set to it, so the server
  replays exactly what came after, and anything at or below it is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote
from typing import Any, TypeVar

import httpx
import msgspec
import websockets

from engine_client.types import (
    TERMINAL,
    ApiError,
    Cancelled,
    ErrorBody,
    Event,
    EventHistory,
    Order,
    OrderPage,
    OrderView,
    PairQuotes,
    StreamNotice,
    Submitted,
    VenueQuote,
    stream_message,
)

T = TypeVar("T")

#: Answers worth another attempt: nothing was stored (429), or the server or a proxy in
#: front of it could not answer now (5xx other than 500, which is a bug, not a moment).
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
#: Stream close codes that answer as an HTTP status would: 4000 + the status.
_STREAM_REFUSALS = {4401: "unauthorized", 4404: "order_not_found", 4429: "rate_limited", 4503: "unavailable"}


class EngineClient:
    """A client of one gateway. Use as `async with EngineClient(url, api_key) as engine: ...`.

    `http` may be an `httpx.AsyncClient` the caller owns (its base URL and headers are
    used, and it is not closed here). Transient failures are retried `retries` times, waiting
    the server's `Retry-After` when it gives one (at most `max_wait` seconds), else
    `backoff` seconds doubling each time.
    """

    def __init__(self, base_url: str = "", api_key: str | None = None, *, http: httpx.AsyncClient | None = None,
                 timeout: float = 10.0, retries: int = 3, backoff: float = 0.2, max_wait: float = 10.0) -> None:
        if http is None:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)
            self._owned = True
        else:
            self._owned = False
        self.http = http
        self.retries, self.backoff, self.max_wait, self.timeout = retries, backoff, max_wait, timeout

    async def __aenter__(self) -> EngineClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    # --- Orders -----------------------------------------------------------------------------

    async def submit(self, order: Order) -> Submitted:
        """Submit an order; safe to call again with the same `order` (it keeps its clientOrderId).

        An order an earlier attempt created comes back with `created` False. One the log
        stored too late comes back `failed` with `failure_code` "accept_deadline_missed": it
        never executed, and a new order (a new clientOrderId) is the way to try again.
        """
        # Set on the caller's order itself, so that calling again with it is the same order.
        if order.client_order_id is None:
            order.client_order_id = str(uuid.uuid4())
        return await self._call("POST", "/api/orders", Submitted, content=msgspec.json.encode(order))

    async def get(self, order_id: str) -> OrderView:
        return await self._call("GET", _order_path(order_id), OrderView)

    async def list(self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> OrderPage:
        """One page of the caller's orders, newest first; pass `page.next_cursor` as `cursor` for the next."""
        params = {k: v for k, v in (("status", status), ("limit", limit), ("cursor", cursor)) if v is not None}
        return await self._call("GET", "/api/orders", OrderPage, params=params)

    async def events(self, order_id: str) -> list[Event]:
        return (await self._call("GET", _order_path(order_id) + "/events", EventHistory)).events

    async def cancel(self, order_id: str) -> Cancelled:
        """Cancel an order with no transaction on its way; ApiError 409 (with `order_status`) after that."""
        return await self._call("DELETE", _order_path(order_id), Cancelled)

    async def quotes(self, pair: str) -> PairQuotes:
        return await self._call("GET", "/api/quotes", PairQuotes, params={"pair": pair})

    # --- Streams ----------------------------------------------------------------------------

    async def watch(self, order_id: str, *, after_seq: int = 0) -> AsyncIterator[Event]:
        """Every event of the order after `after_seq`, in order, until the terminal one.

        A connection that drops (or a gateway that goes away) is reopened with `afterSeq`
        at the last event yielded, `retries` times in a row at most. To stop early, iterate
        inside `contextlib.aclosing(client.watch(...))`, which closes the stream at once.
        """
        last, done = after_seq, False

        async def read(ws) -> AsyncIterator[Event]:
            nonlocal last, done
            async for raw in ws:
                event = stream_message(raw)
                if isinstance(event, StreamNotice):
                    if event.type == "error":
                        raise _refusal(event)
                    if event.status in TERMINAL and event.last_seq <= last:  # nothing left to send
                        done = True
                        return
                    continue
                if event.seq <= last:  # already yielded before a reconnect
                    continue
                last = event.seq
                yield event
                if event.terminal:
                    done = True
                    return

        # Ends quietly on a close with 1000; reconnects on any other end.
        stream = self._follow(lambda: _order_path(order_id) + f"/stream?afterSeq={last}", read,
                              finished=lambda ws: done or ws.close_code == 1000)
        async with contextlib.aclosing(stream):
            async for event in stream:
                yield event

    async def follow_quotes(self, pair: str) -> AsyncIterator[VenueQuote]:
        """The latest quote of each venue for `pair`, then every new one, for as long as the caller reads.

        A dropped connection is reopened like a watch's; the stream then starts again with
        each venue's latest quote, so nothing newer is missed.
        """
        async def read(ws) -> AsyncIterator[VenueQuote]:
            async for raw in ws:
                kind = msgspec.json.decode(raw, type=StreamNotice)
                if kind.type == "error":
                    raise _refusal(kind)
                if kind.type == "quote":
                    yield msgspec.json.decode(raw, type=VenueQuote)

        stream = self._follow(lambda: "/api/quotes/stream", read, finished=lambda ws: False, params={"pair": pair})
        async with contextlib.aclosing(stream):
            async for latest in stream:
                yield latest

    async def _follow(self, path: Callable[[], str], read: Callable[[Any], AsyncIterator[T]], *,
                      finished: Callable[[Any], bool], params: dict[str, str] | None = None) -> AsyncIterator[T]:
        """What `read` takes from the stream at `path()`, reopened after every end that is not
        `finished`, `retries` times in a row at most; a refusal for good raises at once."""
        failures = 0
        while True:
            try:
                async with self._connect(path(), params) as ws:
                    async for item in read(ws):
                        failures = 0
                        yield item
                if finished(ws):
                    return
                lost: Exception = ConnectionError(f"stream closed with {ws.close_code} {ws.close_reason}")
            except websockets.ConnectionClosedError as closed:
                refused = _closed_with(closed.rcvd)
                if refused is not None and refused.status not in RETRYABLE_STATUS:
                    raise refused from None
                lost = refused or closed
            except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                if not _transient(exc):
                    raise
                lost = exc
            failures += 1
            if failures > self.retries:
                raise lost
            await asyncio.sleep(self._wait(failures, None))

    # --- Plumbing ---------------------------------------------------------------------------

    def _connect(self, path: str, params: dict[str, str] | None = None):
        url = self.http.base_url.join(path)
        if params:
            url = url.copy_merge_params(params)
        ws_url = str(url).replace("http", "ws", 1)
        headers = {k: v for k, v in self.http.headers.items() if k.lower() in ("authorization", "x-api-key")}
        return websockets.connect(ws_url, additional_headers=headers, open_timeout=self.timeout, compression=None)

    async def _call(self, method: str, path: str, answer: type[T], **request: Any) -> T:
        """One request, retried while it fails transiently; the answer decoded, or ApiError."""
        if "content" in request:
            request["headers"] = {"content-type": "application/json"}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.request(method, path, **request)
            except httpx.TransportError:
                if attempt > self.retries:
                    raise
                await asyncio.sleep(self._wait(attempt, None))
                continue
            if response.is_success:
                return msgspec.json.decode(response.content, type=answer)
            if response.status_code in RETRYABLE_STATUS and attempt <= self.retries:
                await asyncio.sleep(self._wait(attempt, response.headers.get("retry-after")))
                continue
            raise _error(response)

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None and retry_after.isdigit():
            return min(float(retry_after), self.max_wait)
        return min(self.backoff * 2 ** (attempt - 1), self.max_wait)


def _order_path(order_id: str) -> str:
    """The order's path: the id is one segment whatever it holds, so no `/`, `?` or `..` in it reaches another route."""
    return "/api/orders/" + quote(order_id, safe="").replace(".", "%2E")


def _error(response: httpx.Response) -> ApiError:
    try:
        return ApiError.of(response.status_code, msgspec.json.decode(response.content, type=ErrorBody))
    except msgspec.DecodeError:  # not the API's own answer (a proxy's page, say)
        return ApiError(response.status_code, "http_error", response.text[:200] or response.reason_phrase)


def _refusal(notice: StreamNotice) -> ApiError:
    return ApiError(400, notice.error or "invalid_field", notice.detail or "", notice.field)


def _closed_with(frame: websockets.frames.Close | None) -> ApiError | None:
    """The refusal a stream's close code stands for, if it is one (4000 + an HTTP status)."""
    if frame is None or frame.code not in _STREAM_REFUSALS:
        return None
    status = frame.code - 4000
    return ApiError(status, _STREAM_REFUSALS[frame.code], frame.reason or _STREAM_REFUSALS[frame.code],
                    "orderId" if status == 404 else None)


def _transient(exc: Exception) -> bool:
    """Whether reconnecting may help: not when the gateway refused the upgrade for a reason of its own."""
    if isinstance(exc, websockets.InvalidStatus):
        return exc.response.status_code in RETRYABLE_STATUS
    return True
