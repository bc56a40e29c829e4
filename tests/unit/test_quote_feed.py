"""The live quote feed publishes a pair's quote only when it changed."""

from __future__ import annotations

import msgspec

from services.router.feed import QuoteFeed
from shared.chain import SlotClock
from shared.clock import FakeClock
from shared.market.model import Market
from shared.topology import Topology


SLOT = 5_000


class Published:
    """Stands in for the NATS client: records what was published."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def publish(self, subject: str, payload: bytes) -> None:
        self.subjects.append(subject)


def feed() -> tuple[QuoteFeed, Published, Market]:
    nc, market, clock = Published(), Market(42), FakeClock()
    return QuoteFeed(nc, Topology(), market, SlotClock(0, 400, clock.now_ms), clock), nc, market


def unit_quotes(market: Market, slot: int):
    return market.quotes("SOL", "USDC", 10**9, slot)


async def test_an_unchanged_quote_is_not_published_again() -> None:
    quotes_feed, nc, market = feed()
    quotes = unit_quotes(market, SLOT)
    assert await quotes_feed.publish_quotes(quotes, SLOT) == len(quotes) > 0
    assert await quotes_feed.publish_quotes(quotes, SLOT + 1) == 0
    assert len(nc.subjects) == len(quotes)


async def test_a_quote_that_moved_is_published_and_only_it() -> None:
    quotes_feed, nc, market = feed()
    quotes = unit_quotes(market, SLOT)
    await quotes_feed.publish_quotes(quotes, SLOT)
    moved = (msgspec.structs.replace(quotes[0], amount_out=quotes[0].amount_out + 1), *quotes[1:])
    assert await quotes_feed.publish_quotes(moved, SLOT + 1) == 1
    assert nc.subjects[-1] == Topology().quote_subject("SOL-USDC", quotes[0].venue)
