"""The routing decision: pure, from an order and a market view at an explicit slot."""

from __future__ import annotations

from typing import Sequence

from services.router.optimize import Routing, optimize, rank_quotes
from shared import events as ev
from shared.market.quotes import Quote, min_out
from shared.market.routing import NoRoute
from shared.market.view import MarketView

__all__ = ["NoRoute", "decide", "decide_from_quotes", "route_from", "snapshot"]

_BPS = 10_000


def snapshot(quote: Quote) -> ev.QuoteSnapshot:
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


def decide(spec: ev.OrderSpec, market: MarketView | Sequence[Quote], slot: int) -> ev.Route:
    """Route the order where it gets the most output: one pool, a split, or two hops.

    ``market`` is a market view (`MarketView`: ``pools_for``, ``pool``, ``quotes``);
    every candidate route is priced at ``slot``. Raises `NoRoute` with the reason of
    every route tried when nothing can fill the order.

    The minimum output is the expected output less the order's slippage tolerance,
    raised to the order's own floor (``spec.min_out``, from a limit or sniper price)
    when it has one; the chain refuses the swap if it would pay less.

    A sequence of quotes in place of the market view (the earlier form) still works
    and considers only those direct quotes.
    """
    if not isinstance(market, MarketView):
        return decide_from_quotes(spec, market, slot)
    routing = optimize(market, spec.token_in, spec.token_out, spec.amount_in, slot)
    return route_from(spec, routing, slot)


def decide_from_quotes(spec: ev.OrderSpec, quotes: Sequence[Quote], slot: int) -> ev.Route:
    """Route among direct quotes only: the fillable one with the most output."""
    if not quotes:
        raise NoRoute(f"no venue has a pool for {spec.token_in}/{spec.token_out}")
    ranked = rank_quotes(quotes)
    best = ranked[0]
    if not best.fillable:
        reasons = "; ".join(f"{q.pool_id}: {q.reason}" for q in ranked)
        raise NoRoute(f"no venue can fill {spec.token_in} -> {spec.token_out}: {reasons}")
    path = ev.Path(
        amount_in=best.amount_in,
        amount_out=best.amount_out,
        legs=(
            ev.Leg(
                venue=best.venue, pool_id=best.pool_id, token_in=best.token_in, token_out=best.token_out,
                amount_in=best.amount_in, amount_out=best.amount_out, fee=best.fee,
                price_impact_bps=best.price_impact_bps,
            ),
        ),
    )
    candidates = tuple(
        ev.Candidate(kind="direct", description=q.venue, amount_out=q.amount_out, fillable=q.fillable,
                     paths=(path,) if q is best else ())
        for q in ranked
    )
    return ev.Route(
        venue=best.venue,
        pool_id=best.pool_id,
        amount_in=best.amount_in,
        expected_out=best.amount_out,
        min_out=_floor(spec, best.amount_out),
        fee=best.fee,
        price_impact_bps=best.price_impact_bps,
        slot=slot,
        quotes=tuple(snapshot(q) for q in ranked),
        kind="direct",
        paths=(path,),
        candidates=candidates,
    )


def route_from(spec: ev.OrderSpec, routing: Routing, slot: int) -> ev.Route:
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
        quotes=tuple(snapshot(q) for q in routing.quotes),
        kind=best.kind,
        paths=best.paths,
        gain_bps=gain,
        candidates=routing.candidates,
    )


def _floor(spec: ev.OrderSpec, expected_out: int) -> int:
    floor = min_out(expected_out, spec.slippage_bps)
    return floor if spec.min_out is None else max(floor, spec.min_out)
