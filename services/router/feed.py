"""Live quotes on `quotes.<PAIR>.<venue>`, for anyone to watch (the stream keeps the latest).

Each interval quotes one unit of every pair on every venue and publishes only the quotes
that differ from the last one published on their subject, so a quiet market costs the
quoting (a few milliseconds, pools the router builds for routing anyway) and no messages.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Sequence

import msgspec
from nats.aio.client import Client

from shared.amounts import format_amount
from shared.chain import SlotClock
from shared.clock import Clock
from shared.market.model import Market
from shared.market.quotes import Quote
from shared.market.tokens import get_token
from shared.topology import Topology

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


class QuoteFeed:
    def __init__(self, nc: Client, topology: Topology, market: Market, slots: SlotClock, clock: Clock):
        self._nc = nc
        self._topology = topology
        self._market = market
        self._slots = slots
        self._clock = clock
        #: The unit quote last published on each subject (its slot and time aside).
        self._last: dict[str, Quote] = {}

    def _pair(self, token_a: str, token_b: str) -> str | None:
        """The listed pair id for two tokens, either way round (launched pairs included)."""
        for pair in self._market.pairs():
            if {pair.base, pair.quote} == {token_a, token_b}:
                return pair.pair_id
        return None

    def _pair_id(self, quote: Quote) -> str:
        return self._pair(quote.token_in, quote.token_out) or f"{quote.token_in}-{quote.token_out}"

    async def publish_quotes(self, quotes: Sequence[Quote], slot: int) -> int:
        """Publish the quotes that changed since they were last published; returns how many."""
        published = 0
        for quote in quotes:
            pair = self._pair_id(quote)
            subject = self._topology.quote_subject(pair, quote.venue)
            if self._last.get(subject) == quote:
                continue
            self._last[subject] = quote
            body = {
                "pair": pair,
                "venue": quote.venue,
                "poolId": quote.pool_id,
                "slot": slot,
                "timestamp": self._clock.now_ms(),
                "tokenIn": quote.token_in,
                "tokenOut": quote.token_out,
                "amountIn": format_amount(quote.amount_in, get_token(quote.token_in).decimals),
                "amountOut": format_amount(quote.amount_out, get_token(quote.token_out).decimals),
                "fee": format_amount(quote.fee, get_token(quote.token_in).decimals),
                "priceImpactBps": quote.price_impact_bps,
                "spotPrice": quote.spot_price,
                "executedPrice": quote.executed_price,
                "fillable": quote.fillable,
            }
            await self._nc.publish(subject, _encode(body))
            published += 1
        return published

    async def run(self, interval_ms: int, stop: asyncio.Event) -> None:
        """Quote one unit of each pair's base token on every venue, every interval; publish what changed."""
        while not stop.is_set():
            slot = self._slots.current_slot()
            for pair in self._market.pairs():
                unit = 10 ** get_token(pair.base).decimals
                try:
                    quotes = self._market.quotes(pair.base, pair.quote, unit, slot)
                except Exception:
                    log.exception("quoting %s failed", pair.pair_id)
                    continue
                await self.publish_quotes(quotes, slot)
            try:
                await asyncio.wait_for(stop.wait(), interval_ms / 1000)
            except asyncio.TimeoutError:
                pass
