"""HTTP and WebSocket routes of the public API."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import msgspec

from litestar import Controller, Request, Response, WebSocket, delete, get, post, websocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi.spec import OpenAPIType
from litestar.params import Parameter, PathParameter
from uvicorn.protocols.utils import ClientDisconnected

from services.gateway import views
from services.gateway.cancel import cancel
from services.gateway.errors import ApiError, bad_request, clip, log_full
from services.gateway.intake import parse_order
from services.gateway.models import Cancelled, EventHistory, OrderPage, OrderView, Submitted
from services.gateway.openapi import API_ERRORS, ApiOperation, OrderSubmission, errors, query_schema
from services.gateway.params import bounded_int, error_message
from services.gateway.reads import BadCursor, ReadModelUnavailable
from services.gateway.sockets import client_gone, close_for
from services.gateway.submit import submit
from shared import logs, metrics, tracing
from shared.events import OrderAccepted
from shared.ids import is_order_id
from shared.orders import STATUSES, IllegalTransition, OrderState, apply

log = logging.getLogger(__name__)

#: The `{orderId}` of a path, as the contract names it.
OrderId = Annotated[str, PathParameter(name="orderId", description="The order's id, as the submission answered it")]


def _not_found(order_id: str) -> ApiError:
    return ApiError(404, "order_not_found", f"no order with id {clip(order_id)}", field="orderId")


def owned(order: OrderState | None, account: str) -> bool:
    """Another account's order is treated everywhere exactly as one that does not exist."""
    return order is not None and order.spec.account == account


def shown(current: OrderState | None, event) -> OrderState | None:
    """The state after `event`; None for an event the state machine refuses.

    Such an event (in the log by a fault) is part of no history a reader sees, as the
    projector leaves it out of the read model: the order stays as its valid events left it.
    """
    try:
        return apply(current, event)
    except IllegalTransition as exc:
        log.warning("refused event left out", extra={"orderId": event.order_id, "seq": event.seq, "reason": str(exc)})
        return None


def fold_shown(events) -> OrderState | None:
    current = None
    for event in events:
        if (after := shown(current, event)) is not None:
            current = after
    return current


async def load_order(state: State, order_id: str, account: str) -> OrderState:
    """The read model's view, or the log's when the read model is away or has not caught up.

    An order the log no longer holds (retention) is the read model's to answer; while that
    is away too the order may exist, so the answer is 503, not 404.
    """
    if not is_order_id(order_id):
        raise _not_found(order_id)
    away: ReadModelUnavailable | None = None
    try:
        found = await state.reads.order(order_id)
    except ReadModelUnavailable as exc:
        away, found = exc, None
    if found is None:
        found = fold_shown(s.event for s in await state.log.read(order_id))
        if found is None and away is not None:
            raise away
    if not owned(found, account):
        raise _not_found(order_id)
    return found


def _ws_url(request: Request, state: State, order_id: str) -> str:
    base = state.settings.gateway_public_url.rstrip("/") or f"{request.url.scheme}://{request.url.netloc}"
    ws_base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{ws_base}/api/orders/{order_id}/stream"


class OrderController(Controller):
    path = "/api/orders"
    tags = ["orders"]

    @post(
        ["/execute", "/"],
        status_code=202,
        operation_class=OrderSubmission,
        responses=errors(400, 408, 409, 413, 415, 503, *API_ERRORS),
    )
    async def execute(self, request: Request) -> Response[Submitted]:
        """Submit a swap order.

        Answers 202 once the order's first event is durably in the log. Repeating a
        `clientOrderId` with the same body answers 200 with the same order; with a
        different body, 409. When the log does not confirm the order within the
        acceptance deadline the answer is 503 with `Retry-After` and the `orderId`:
        `not_accepted` means the order will never execute; `unavailable` that the log
        could not be asked. Either way, retry with the same `clientOrderId`.
        """
        state: State = request.app.state
        spec = parse_order(await request.body(), state.clock.now_ms())
        if state.log_room.full:
            raise log_full()
        spec = msgspec.structs.replace(spec, account=request.user)
        with tracing.span("submit order", **{"order.type": spec.order_type}) as span:
            result = await submit(spec, emitter=state.emitter, timing=state.accept_timing)
            span.set_attribute("order.id", result.state.order_id)
            if result.created:
                log.info("order accepted", extra={"orderId": result.state.order_id, "account": spec.account,
                                                  "orderType": spec.order_type,
                                                  "pair": f"{spec.token_in}-{spec.token_out}"})
        body = views.extend(
            views.order_view(result.state),
            Submitted,
            ws_url=_ws_url(request, state, result.state.order_id),
            status_url=f"/api/orders/{result.state.order_id}",
            created=result.created,
        )
        return Response(body, status_code=202 if result.created else 200)

    @get(
        ["/{orderId:str}", "/status/{orderId:str}"],
        operation_class=ApiOperation,
        responses=errors(404, 503, *API_ERRORS),
    )
    async def order(self, order_id: OrderId, request: Request) -> OrderView:
        """One order: status, route, quotes, amounts, transaction, failure reason."""
        state: State = request.app.state
        return views.order_view(await load_order(state, order_id, request.user))

    @get("/", operation_class=ApiOperation, responses=errors(400, 503, *API_ERRORS))
    async def orders(
        self,
        request: Request,
        status: str | None = Parameter(
            default=None, description="Only orders in this status", schema_extra=query_schema(enum=list(STATUSES))
        ),
        limit: str = Parameter(
            default="20",
            description="Page size, 1-100",
            schema_extra=query_schema(OpenAPIType.INTEGER, minimum=1, maximum=100, default=20),
        ),
        cursor: str | None = Parameter(
            default=None, description="nextCursor of the previous page", schema_extra=query_schema()
        ),
    ) -> OrderPage:
        """Orders, newest first, with cursor pagination."""
        state: State = request.app.state
        if status is not None and status not in STATUSES:
            raise bad_request("status", f"status must be one of: {', '.join(STATUSES)}")
        size = bounded_int("limit", limit, default=20, low=1, high=100)
        try:
            page, next_cursor = await state.reads.orders(
                account=request.user, status=status, limit=size, cursor=cursor
            )
        except BadCursor as exc:
            raise bad_request("cursor", str(exc)) from None
        return OrderPage(orders=[views.order_view(s) for s in page], next_cursor=next_cursor)

    @delete(
        "/{orderId:str}",
        status_code=200,
        operation_class=ApiOperation,
        responses=errors(404, 409, 503, *API_ERRORS),
    )
    async def cancel_order(self, order_id: OrderId, request: Request) -> Cancelled:
        """Cancel an order that has no transaction on its way to the chain.

        Cancelling twice is fine (200 both times, `cancelled: false` the second time).
        After submission: 409 with the current status.
        """
        state: State = request.app.state
        if not is_order_id(order_id):
            raise _not_found(order_id)
        with logs.about(order_id):
            current, changed = await cancel(order_id, request.user, state.emitter)
        return views.extend(views.order_view(current), Cancelled, cancelled=changed)

    @get("/{orderId:str}/events", operation_class=ApiOperation, responses=errors(404, 503, *API_ERRORS))
    async def events(self, order_id: OrderId, request: Request) -> EventHistory:
        """The order's full event history, oldest first."""
        state: State = request.app.state
        if not is_order_id(order_id):
            raise _not_found(order_id)
        away: ReadModelUnavailable | None = None
        try:
            history = await state.reads.events(order_id)
        except ReadModelUnavailable as exc:
            away, history = exc, []
        if not history:  # the read model is away or behind: the log has them (unless retention took them)
            history = [s.event for s in (await state.log.read(order_id))]
            if not history and away is not None:
                raise away
        if not history or not isinstance(history[0], OrderAccepted) or history[0].order.account != request.user:
            raise _not_found(order_id)
        messages, current = [], None
        for event in history:
            if (after := shown(current, event)) is not None:
                current = after
                messages.append(views.stream_message(event, current))
        return EventHistory(order_id=order_id, events=messages)


@websocket(["/api/orders/{orderId:str}/stream", "/api/orders/status/{orderId:str}"])
async def stream(socket: WebSocket, order_id: OrderId) -> None:
    """Every event of the order after `afterSeq`, then live events; closes after the terminal one."""
    state: State = socket.app.state
    await socket.accept()
    try:
        after = bounded_int("afterSeq", socket.query_params.get("afterSeq"), default=0, low=0, high=10**15)
    except ApiError as exc:
        await socket.send_json(error_message(exc))
        await socket.close(code=1008, reason="invalid afterSeq")
        return
    if not is_order_id(order_id):  # before any NATS subject is built from it
        await socket.close(code=4404, reason="unknown order")
        return
    metrics.WS_CONNECTIONS.labels(metrics.service()).inc()
    sent = metrics.WS_MESSAGES.labels(metrics.service())
    try:
        await _stream(socket, state, order_id, after, sent)
    except (WebSocketDisconnect, ClientDisconnected):
        # The client left while a message was on its way: what a client may do at any time.
        log.debug("client left the stream of order %s", order_id)
    except Exception:
        log.warning("order stream ended by an error", extra={"orderId": order_id}, exc_info=True)
        raise
    finally:
        metrics.WS_CONNECTIONS.labels(metrics.service()).dec()


async def _stream(socket: WebSocket, state: State, order_id: str, after: int, sent) -> None:
    account = socket.user
    deadline = asyncio.get_running_loop().time() + state.settings.unknown_order_wait_s
    current: OrderState | None = None
    hidden = False  # another account's order: shown exactly as one that does not exist
    replayed = []
    events = state.hub.watch(order_id, after_seq=0)
    try:
        # Fold from the first event so every message carries the status after it, but send
        # only what comes after `afterSeq`.
        async for event in events:
            if event is None:
                break
            if (state_after := shown(current, event)) is None:
                continue
            current = state_after
            if event.seq > after:
                replayed.append(views.stream_message(event, current))
        if current is not None and not owned(current, account):
            current, hidden, replayed = None, True, []
        await socket.send_json({
            "type": "connection",
            "orderId": order_id,
            "status": current.status if current else None,
            "lastSeq": current.seq if current else 0,
            "afterSeq": after,
            "message": "connected; replaying events after seq %d, then live" % after,
        })
        sent.inc()
        for message in replayed:
            await socket.send_json(message)
            sent.inc()
        replayed = []  # sent: nothing of it to hold while the stream stays open
        if current is not None and current.terminal:
            await socket.close(code=1000, reason=current.status)
            return

        async def follow() -> None:
            """Send each live event until the terminal one; a TimeoutError while the order is unknown."""
            nonlocal current, hidden
            limit = None if current is not None else deadline
            async with asyncio.timeout_at(limit) as waiting:
                async for event in events:
                    if hidden or (state_after := shown(current, event)) is None:
                        continue
                    if not owned(state_after, account):
                        hidden = True
                        continue
                    if current is None:
                        waiting.reschedule(None)  # the order exists: follow it as long as it takes
                    current = state_after
                    if event.seq > after:
                        await socket.send_json(views.stream_message(event, current))
                        sent.inc()
                    if current.terminal:
                        await socket.close(code=1000, reason=current.status)
                        return

        # Two tasks for the whole stream, none per event: one follows the order, one
        # waits for the client to leave (or misbehave); whichever ends first stops the other.
        gone = asyncio.ensure_future(client_gone(socket))
        following = asyncio.ensure_future(follow())
        try:
            await asyncio.wait({following, gone}, return_when=asyncio.FIRST_COMPLETED)
            if following.done() and not isinstance(following.exception(), TimeoutError):
                following.result()  # the terminal event sent, or what went wrong
            elif gone.done():
                await close_for(socket, gone.result())  # the client left or misbehaved: stop following
            else:
                await socket.close(code=4404, reason="unknown order")
        finally:
            gone.cancel()
            if not following.done():
                following.cancel()
                await asyncio.wait({following})  # the generator can only be closed once it stopped
    finally:
        await events.aclose()
