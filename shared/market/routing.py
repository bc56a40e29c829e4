"""Choosing a venue: the most output after fees among quotes that can fill."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from shared.amounts import format_amount
from shared.market.quotes import Quote
from shared.market.tokens import get_token

__all__ = ["NoRoute", "RouteChoice", "choose_route"]


class NoRoute(Exception):
    """No venue can fill the order; ``reason`` says why, for the order's failure event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RouteChoice(msgspec.Struct, frozen=True, kw_only=True):
    """The chosen quote and every quote considered, best first (unfillable ones last)."""

    best: Quote
    considered: tuple[Quote, ...]


def _rank(quote: Quote) -> tuple[bool, int, int, str, str]:
    # More output wins; then less price impact; then names, so replays agree.
    return (not quote.fillable, -quote.amount_out, quote.price_impact_bps, quote.venue, quote.pool_id)


def choose_route(quotes: Sequence[Quote]) -> RouteChoice:
    """Pick the fillable quote with the largest output; fees are already deducted from it.

    Ties go to the lower price impact, then the venue name, then the pool id, so
    the choice never depends on the order of ``quotes``. Raises `NoRoute` when no
    quote is fillable and `ValueError` when the quotes are not for the same swap.
    """
    if not quotes:
        raise NoRoute("no venue has a pool for this pair")
    first = quotes[0]
    for quote in quotes:
        if (quote.token_in, quote.token_out, quote.amount_in) != (first.token_in, first.token_out, first.amount_in):
            raise ValueError("quotes for different swaps cannot be compared")
    ranked = tuple(sorted(quotes, key=_rank))
    best = ranked[0]
    if not best.fillable:
        reasons = "; ".join(f"{q.pool_id}: {q.reason}" for q in ranked)
        amount = format_amount(first.amount_in, get_token(first.token_in).decimals)
        raise NoRoute(f"no venue can fill {amount} {first.token_in} -> {first.token_out}: {reasons}")
    return RouteChoice(best=best, considered=ranked)
