"""The routing decision: pure, from an order and the quotes of every venue."""

from __future__ import annotations

from typing import Sequence

from shared import events as ev
from shared.market.quotes import Quote, min_out
from shared.market.routing import NoRoute, choose_route

__all__ = ["NoRoute", "decide", "snapshot"]


def snapshot(quote: Quote) -> ev.QuoteSnapshot:
    return ev.QuoteSnapshot(
        venue=quote.venue,
        pool_id=quote.pool_id,
        amount_in=quote.amount_in,
        amount_out=quote.amount_out,
        fee=quote.fee,
        price_impact_bps=quote.price_impact_bps,
        fillable=quote.fillable,
    )


def decide(spec: ev.OrderSpec, quotes: Sequence[Quote], slot: int) -> ev.Route:
    """Pick the venue with the most output after fees; raise `NoRoute` if none can fill.

    The minimum output is the expected output less the order's slippage tolerance; the
    chain refuses the swap if the market moves further than that before it lands.
    """
    if not quotes:
        raise NoRoute(f"no venue has a pool for {spec.token_in}/{spec.token_out}")
    choice = choose_route(quotes)
    best = choice.best
    return ev.Route(
        venue=best.venue,
        pool_id=best.pool_id,
        amount_in=best.amount_in,
        expected_out=best.amount_out,
        min_out=min_out(best.amount_out, spec.slippage_bps),
        fee=best.fee,
        price_impact_bps=best.price_impact_bps,
        slot=slot,
        quotes=tuple(snapshot(q) for q in choice.considered),
    )
