"""The routing decision: pure, from an order and a market view at an explicit slot."""

from __future__ import annotations

from services.router.optimize import NoRoute, Routing, optimize
from shared import events as ev
from shared.market.quotes import Quote, min_out
from shared.market.view import MarketView

__all__ = ["NoRoute", "decide"]

_BPS = 10_000


def decide(spec: ev.OrderSpec, market: MarketView, slot: int) -> ev.Route:
    """Route the order where it gets the most output: one pool, a split, or two hops.

    Every candidate route is priced on ``market`` at ``slot`` (`optimize`). Raises
    `NoRoute` with the reason of every route tried when nothing can fill the order.

    The minimum output is the expected output less the order's slippage tolerance,
    raised to the order's own floor (``spec.min_out``, from a limit or sniper price)
    when it has one; the chain refuses the swap if it would pay less.
    """
    return _route(spec, optimize(market, spec.token_in, spec.token_out, spec.amount_in, slot), slot)


def _route(spec: ev.OrderSpec, routing: Routing, slot: int) -> ev.Route:
    """The `Route` event payload for the optimiser's best candidate.

    ``venue``/``pool_id`` name the pool of a direct route; otherwise ``venue`` is the
    kind ("split" or "multihop") and ``pool_id`` lists the pools, paths joined by
    ``+`` and the legs of a path by ``>``. ``fee`` is what the first leg of every path
    charges, in ``token_in`` base units (later legs charge in other tokens; each
    leg's fee is in its own ``Leg``).
    """
    best = routing.best
    if best.kind == "direct":
        leg = best.paths[0].legs[0]
        venue, pool_id = leg.venue, leg.pool_id
    else:
        venue = best.kind
        pool_id = "+".join(">".join(leg.pool_id for leg in path.legs) for path in best.paths)
    direct = routing.best_direct
    gain = 0
    if direct is not None and direct.amount_out > 0:
        gain = (best.amount_out - direct.amount_out) * _BPS // direct.amount_out
    return ev.Route(
        venue=venue,
        pool_id=pool_id,
        amount_in=spec.amount_in,
        expected_out=best.amount_out,
        min_out=_floor(spec, best.amount_out),
        fee=sum(path.legs[0].fee for path in best.paths),
        price_impact_bps=routing.price_impact_bps,
        slot=slot,
        quotes=tuple(_snapshot(q) for q in routing.quotes),
        kind=best.kind,
        paths=best.paths,
        gain_bps=gain,
        candidates=routing.candidates,
    )


def _floor(spec: ev.OrderSpec, expected_out: int) -> int:
    floor = min_out(expected_out, spec.slippage_bps)
    return floor if spec.min_out is None else max(floor, spec.min_out)


def _snapshot(quote: Quote) -> ev.QuoteSnapshot:
    """A quote as the route records it."""
    return ev.QuoteSnapshot(
        venue=quote.venue,
        pool_id=quote.pool_id,
        amount_in=quote.amount_in,
        amount_out=quote.amount_out,
        fee=quote.fee,
        price_impact_bps=quote.price_impact_bps,
        fillable=quote.fillable,
    )
