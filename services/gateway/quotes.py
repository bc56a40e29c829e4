"""Live quotes per pair and venue: the latest from the QUOTES stream, then as they come."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import msgspec
import nats.js.errors
from litestar import WebSocket, get, websocket
from litestar.datastructures import State
from litestar.params import Parameter
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.gateway.errors import ApiError, bad_request, clip
from services.gateway.models import PairQuotes, VenueQuote
from services.gateway.openapi import API_ERRORS, ApiOperation, errors, query_schema
from services.gateway.params import error_message
from services.gateway.sockets import client_gone, close_for
from shared import metrics
from shared.market.pools import VENUE_CPMM, VENUE_DLMM
from shared.market.tokens import UnknownToken, get_token
from shared.topology import Topology

VENUES = (VENUE_CPMM, VENUE_DLMM)


def parse_pair(pair: str | None) -> str:
    """`BASE-QUOTE` with known tokens, in canonical symbols (which name the NATS subject)."""
    if not pair or len(pair) > 40 or pair.count("-") != 1:
        raise bad_request("pair", "pair must look like SOL-USDC")
    base, quote = pair.split("-")
    try:
        return f"{get_token(base).symbol}-{get_token(quote).symbol}"
    except UnknownToken as exc:
        raise bad_request("pair", f"pair {clip(pair)}: unknown token {clip(exc.symbol, 20)}") from None


class QuoteHub:
    """One core subscription per watched pair, fanned out to every watcher in process."""

    def __init__(self, nc: Client, topology: Topology):
        self._nc = nc
        self._js = nc.jetstream()
        self._topology = topology
        self._watchers: dict[str, set[asyncio.Queue]] = {}
        self._subs: dict[str, Any] = {}
        self._gauge = metrics.LIVE_SUBSCRIPTIONS.labels(metrics.service(), "quotes")

    async def latest(self, pair: str) -> list[dict[str, Any]]:
        out = []
        for venue in VENUES:
            subject = self._topology.quote_subject(pair, venue)
            try:
                msg = await self._js.get_last_msg(self._topology.quotes_stream, subject, direct=True)
            except nats.js.errors.NotFoundError:
                continue
            out.append(json.loads(msg.data))
        return out

    async def join(self, pair: str) -> asyncio.Queue:
        """A queue receiving every new quote of `pair` from now on."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        if pair in self._watchers:
            self._watchers[pair].add(queue)
            return queue
        self._watchers[pair] = {queue}
        try:
            self._subs[pair] = await self._nc.subscribe(
                self._topology.quote_subject(pair, "*"), cb=self._fan_out(pair)
            )
        except BaseException:
            await self.leave(pair, queue)
            raise
        self._gauge.set(len(self._subs))
        return queue

    async def leave(self, pair: str, queue: asyncio.Queue) -> None:
        watchers = self._watchers.get(pair)
        if watchers is None:
            return
        watchers.discard(queue)
        if not watchers:
            del self._watchers[pair]
            subscription = self._subs.pop(pair, None)  # None: its subscribe failed
            self._gauge.set(len(self._subs))
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    def _fan_out(self, pair: str):
        async def deliver(msg: Msg) -> None:
            quote = json.loads(msg.data)
            for queue in tuple(self._watchers.get(pair, ())):
                if queue.full():  # a watcher this far behind gets the newest, not the backlog
                    queue.get_nowait()
                queue.put_nowait(quote)

        return deliver


@get("/api/quotes", tags=["quotes"], operation_class=ApiOperation, responses=errors(400, 404, 503, *API_ERRORS))
async def quotes(
    state: State,
    pair: str | None = Parameter(
        default=None,
        description="BASE-QUOTE in token symbols, e.g. SOL-USDC",
        schema_extra=query_schema(pattern=r"^[^-]+-[^-]+$", examples=["SOL-USDC"]),
    ),
) -> PairQuotes:
    """The latest quote of every venue for a pair (one unit of the base token, and recent order sizes)."""
    canonical = parse_pair(pair)
    found = await state.quotes.latest(canonical)
    if not found:
        raise ApiError(404, "no_quotes", f"no venue quotes {canonical}; the pair has no pool (yet)", field="pair")
    return PairQuotes(pair=canonical, quotes=msgspec.convert(found, list[VenueQuote]))


@websocket("/api/quotes/stream")
async def quote_stream(socket: WebSocket) -> None:
    """Live quotes for `?pair=`: the latest of each venue first, then every new one."""
    state: State = socket.app.state
    await socket.accept()
    try:
        pair = parse_pair(socket.query_params.get("pair"))
    except ApiError as exc:
        await socket.send_json(error_message(exc))
        await socket.close(code=1008, reason="invalid pair")
        return
    await socket.send_json({"type": "connection", "pair": pair})
    queue = await state.quotes.join(pair)
    # Quotes keep coming whether or not anyone listens, and a quiet pair sends nothing for
    # long: wait for the client's side too, so one that leaves (or sends) is noticed at
    # once, and released. One that vanishes without a word misses the server's keepalive
    # pings (uvicorn's `ws_ping_interval`), which ends the connection the same way.
    gone = asyncio.ensure_future(client_gone(socket))
    try:
        for quote in await state.quotes.latest(pair):
            await socket.send_json({"type": "quote", **quote})
        while True:
            following = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({following, gone}, return_when=asyncio.FIRST_COMPLETED)
            if following not in done:
                following.cancel()
                await close_for(socket, gone.result())
                return
            await socket.send_json({"type": "quote", **following.result()})
    finally:
        gone.cancel()
        await state.quotes.leave(pair, queue)
