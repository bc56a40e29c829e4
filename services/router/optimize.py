"""Route optimisation: direct pools, splits across venues and two-hop paths, best first.

Pure: it reads pools and quotes from a market view at an explicit slot and returns
values. Candidates, in the order they are built:

* **direct**: every pool for the pair, fillable or not, as quoted.
* **multihop**: for each intermediate token among SOL, USDC and USDT (other than the
  two ends), the pair of pools (one per leg) that gives the most for the whole order.
* **split**: the order shared between two routes of the above that have no pool in
  common (two venues of the pair, or a venue and a two-hop path, ...), at the share
  that maximises the total (`split.best_split`), keeping clear of each route's
  liquidity limit (`SPLIT_CAPACITY_PCT`). Listed only when it beats both routes on
  their own. Splits are between two routes at a time, never three.

No two paths of a route go through the same pool: a pool's price moves with every
swap, so two swaps through one pool in one transaction would not each get the price
the pool quoted alone.

Every candidate's amounts come from the pools' own swap math (`quote_pool`), the same
math the chain settles with, so at the routing slot a candidate's ``amount_out`` is
exactly what settling its paths gives. The search itself uses `curves`, which agree
with that math but answer faster.
"""

from __future__ import annotations

from itertools import combinations, product
from typing import Callable, NamedTuple, Sequence

import msgspec

from services.router.curves import Curve, curve_for
from services.router.split import best_split
from shared import events as ev
from shared.amounts import format_amount
from shared.market.pools import Pool, other_token, spot_ratio, venue_of
from shared.market.quotes import Quote, quote_pool
from shared.market.tokens import get_token
from shared.market.view import MarketView

__all__ = ["INTERMEDIATES", "SPLIT_CAPACITY_PCT", "NoRoute", "Routing", "optimize"]

INTERMEDIATES = ("SOL", "USDC", "USDT")
"""Tokens a two-hop path may pass through: the market's deepest hubs."""

SPLIT_CAPACITY_PCT = 95
"""A split sends a route at most this share of what it could take at the routing slot.

Left to itself the search fills a cheap but shallow pool to its last bin, and the
pool, a few slots later at landing, may hold a little less: the whole transaction
would fail. The margin keeps a split fillable through ordinary price moves.
"""

_BPS = 10_000
_ZERO = (0, 1)
_KIND_ORDER = {"direct": 0, "multihop": 1, "split": 2}


class NoRoute(Exception):
    """Nothing can fill the order; ``reason`` says why, for the order's failure event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Routing(msgspec.Struct, frozen=True, kw_only=True):
    """The optimiser's answer for one order at one slot.

    ``candidates`` holds every route considered, best first (unfillable ones last);
    ``best`` is the first. ``best_direct`` is the best fillable single-pool route, if
    any. ``price_impact_bps`` is the best route's output against the output at every
    leg's spot price, fees still deducted, rounded down. ``quotes`` are the direct
    pools' quotes, best first. A direct candidate that cannot fill carries its quote's
    partial output; a two-hop one that cannot, an output of 0; neither has paths.
    """

    best: ev.Candidate
    price_impact_bps: int
    best_direct: ev.Candidate | None
    candidates: tuple[ev.Candidate, ...]
    quotes: tuple[Quote, ...]


_Ratio = tuple[int, int]
"""An exact non-negative rational as (numerator, positive denominator), not reduced: cheaper than `Fraction`."""


class _Scored(NamedTuple):
    candidate: ev.Candidate
    ideal_out: _Ratio  # output at spot prices, fees still paid; 0 when unfillable


class _Template:
    """A chain of pools an amount can go through, before any amount is chosen."""

    __slots__ = ("hops", "out", "pool_ids")

    def __init__(self, hops: tuple[tuple[Pool, str, Curve], ...]) -> None:
        self.hops = hops  # (pool, token sold into it, its curve)
        self.pool_ids = frozenset(pool.pool_id for pool, _, _ in hops)
        #: Output for an input through every hop, or None if one cannot take it whole.
        self.out: Callable[[int], int | None] = _chained([curve.out for _, _, curve in hops])

    def safe_limit(self, amount: int) -> int:
        """The most input up to ``amount`` that stays within `SPLIT_CAPACITY_PCT` of what the route can take."""
        return min(amount, self.limit(amount * 100 // SPLIT_CAPACITY_PCT) * SPLIT_CAPACITY_PCT // 100)

    def limit(self, amount: int) -> int:
        """The most input up to ``amount`` that every hop takes whole."""
        if self.out(amount) is not None:
            return amount
        low, high = 0, amount  # out(low) fills, out(high) does not
        while high - low > 1:
            middle = (low + high) // 2
            if self.out(middle) is None:
                high = middle
            else:
                low = middle
        return low


def _chained(outs: Sequence[Callable[[int], int | None]]) -> Callable[[int], int | None]:
    if len(outs) == 1:
        return outs[0]
    first, second = outs  # two hops at most

    def out(amount_in: int) -> int | None:
        middle = first(amount_in)
        return None if middle is None else second(middle)

    return out


def _ranked(quotes: Sequence[Quote]) -> tuple[Quote, ...]:
    """Quotes best first: fillable, most output, least impact, then by name so replays agree."""
    return tuple(sorted(quotes, key=lambda q: (not q.fillable, -q.amount_out, q.price_impact_bps, q.venue, q.pool_id)))


def optimize(market: MarketView, token_in: str, token_out: str, amount_in: int, slot: int) -> Routing:
    """Every route considered for selling ``amount_in`` of ``token_in`` at ``slot``, best first.

    Raises `NoRoute` when nothing can fill the order, saying why for each route tried.
    """
    symbol_in, symbol_out = get_token(token_in).symbol, get_token(token_out).symbol
    if symbol_in == symbol_out:
        raise ValueError(f"cannot route {symbol_in} to itself")
    curves: dict[tuple[str, str], Curve] = {}

    def template(*hops: tuple[Pool, str]) -> _Template:
        built = []
        for pool, sold in hops:
            key = (pool.pool_id, sold)
            if key not in curves:
                curves[key] = curve_for(pool, sold)
            built.append((pool, sold, curves[key]))
        return _Template(tuple(built))

    pools = {pool.pool_id: pool for pool in market.pools_for(symbol_in, symbol_out, slot)}
    quotes = _ranked(market.quotes(symbol_in, symbol_out, amount_in, slot))
    scored = [_direct(q, pools[q.pool_id]) for q in quotes]
    templates = [template((pools[pool_id], symbol_in)) for pool_id in sorted(pools)]
    failures: list[str] = []
    for middle in INTERMEDIATES:
        if middle in (symbol_in, symbol_out):
            continue
        first, second = market.pools_for(symbol_in, middle, slot), market.pools_for(middle, symbol_out, slot)
        if not first or not second:
            continue
        options = [template((p, symbol_in), (q, middle)) for p, q in product(first, second)]
        best = _best_template(options, amount_in)
        found = _candidate("multihop", [(best, amount_in)]) if best is not None else None
        if found is not None:
            scored.append(found)
            templates.append(best)
            continue
        # No pair of pools takes the whole order, but the one that takes most may still carry part of a split.
        partial = max(options, key=lambda t: (t.out(t.limit(amount_in)) or 0, _names(t)))
        failures.append(f"{symbol_in}->{middle}->{symbol_out}: no pair of pools can take it whole")
        unfillable = ev.Candidate(kind="multihop", description=_template_text(partial), amount_out=0, fillable=False)
        scored.append(_Scored(unfillable, _ZERO))
        if partial.safe_limit(amount_in) > 0:
            templates.append(partial)
    scored.extend(_splits(templates, amount_in))
    scored.sort(key=_rank)
    best = scored[0] if scored else None
    if best is None or not best.candidate.fillable:
        raise NoRoute(_no_route_reason(symbol_in, symbol_out, amount_in, quotes, failures))
    directs = [s.candidate for s in scored if s.candidate.kind == "direct" and s.candidate.fillable]
    return Routing(
        best=best.candidate,
        price_impact_bps=_impact_bps(best.candidate.amount_out, best.ideal_out),
        best_direct=directs[0] if directs else None,
        candidates=tuple(s.candidate for s in scored),
        quotes=quotes,
    )


def _direct(quote: Quote, pool: Pool) -> _Scored:
    if not quote.fillable:
        return _Scored(
            ev.Candidate(kind="direct", description=quote.venue, amount_out=quote.amount_out, fillable=False),
            _ZERO,
        )
    leg = _leg(quote)
    path = ev.Path(amount_in=quote.amount_in, amount_out=quote.amount_out, legs=(leg,))
    candidate = ev.Candidate(kind="direct", description=quote.venue, amount_out=quote.amount_out, paths=(path,))
    return _Scored(candidate, _ideal(((pool, quote),)))


def _names(chain: _Template) -> tuple[str, ...]:
    return tuple(pool.pool_id for pool, _, _ in chain.hops)


def _template_text(chain: _Template) -> str:
    tokens = "->".join([chain.hops[0][1], *(other_token(pool, sold) for pool, sold, _ in chain.hops)])
    return f"{tokens} via {', '.join(venue_of(pool) for pool, _, _ in chain.hops)}"


def _best_template(options: Sequence[_Template], amount_in: int) -> _Template | None:
    best, best_out = None, 0
    for option in sorted(options, key=_names):
        out = option.out(amount_in)
        if out is not None and out > best_out:
            best, best_out = option, out
    return best


def _splits(templates: Sequence[_Template], amount_in: int) -> list[_Scored]:
    found: list[_Scored] = []
    for first, second in combinations(templates, 2):
        if first.pool_ids & second.pool_ids:
            continue
        first_cap, second_cap = first.safe_limit(amount_in), second.safe_limit(amount_in)
        if first_cap + second_cap < amount_in:
            continue
        share = best_split(first.out, second.out, amount_in, first_cap, second_cap)
        if not 0 < share < amount_in:
            continue
        alone = max(first.out(amount_in) or 0, second.out(amount_in) or 0)
        if (first.out(share) or 0) + (second.out(amount_in - share) or 0) <= alone:
            continue  # by the curves, which give what the pools give, the split gains nothing
        split = _candidate("split", [(first, share), (second, amount_in - share)])
        if split is not None and split.candidate.amount_out > alone:
            found.append(split)
    return found


def _candidate(kind: str, shares: Sequence[tuple[_Template, int]]) -> _Scored | None:
    """Swap each share through its template with the pools' own math; None if any leg cannot fill."""
    paths: list[ev.Path] = []
    ideal_num, ideal_den = _ZERO
    for chain, amount in shares:
        legs: list[tuple[Pool, Quote]] = []
        moving = amount
        for pool, sold, _ in chain.hops:
            quote = quote_pool(pool, sold, moving)
            if not quote.fillable:
                return None
            legs.append((pool, quote))
            moving = quote.amount_out
        paths.append(ev.Path(amount_in=amount, amount_out=moving, legs=tuple(_leg(q) for _, q in legs)))
        num, den = _ideal(legs)
        ideal_num, ideal_den = ideal_num * den + num * ideal_den, ideal_den * den
    total = sum(path.amount_out for path in paths)
    whole = sum(path.amount_in for path in paths)
    description = " + ".join(f"{_describe(p)} {_percent(p.amount_in, whole)}" for p in paths)
    if len(paths) == 1:
        description = _describe(paths[0])
    candidate = ev.Candidate(kind=kind, description=description, amount_out=total, paths=tuple(paths))
    return _Scored(candidate, (ideal_num, ideal_den))


def _leg(quote: Quote) -> ev.Leg:
    return ev.Leg(
        venue=quote.venue,
        pool_id=quote.pool_id,
        token_in=quote.token_in,
        token_out=quote.token_out,
        amount_in=quote.amount_in,
        amount_out=quote.amount_out,
        fee=quote.fee,
        price_impact_bps=quote.price_impact_bps,
    )


def _ideal(legs: Sequence[tuple[Pool, Quote]]) -> _Ratio:
    """What a path would give if every leg traded at its pool's spot price, fees still paid."""
    value_num, value_den = legs[0][1].amount_in, 1
    for pool, quote in legs:
        num, den = spot_ratio(pool, quote.token_in)
        # The share of this leg's input left after its fee, converted at spot.
        value_num *= (quote.amount_in - quote.fee) * num
        value_den *= quote.amount_in * den
    return value_num, value_den


def _impact_bps(amount_out: int, ideal: _Ratio) -> int:
    num, den = ideal
    if num <= 0:
        return _BPS
    # (ideal - out) / ideal, in basis points rounded down
    return max(0, (num - amount_out * den) * _BPS // num)


def _describe(path: ev.Path) -> str:
    if len(path.legs) == 1:
        return path.legs[0].venue
    tokens = "->".join([path.legs[0].token_in, *(leg.token_out for leg in path.legs)])
    return f"{tokens} via {', '.join(leg.venue for leg in path.legs)}"


def _percent(part: int, whole: int) -> str:
    share = (part * 100 * 2 + whole) // (whole * 2)  # to the nearest whole percent
    if share == 0:
        return "<1%"
    if share == 100 and part < whole:
        return ">99%"
    return f"{share}%"


def _rank(scored: _Scored) -> tuple:
    # Most output wins; then the simpler route (fewer swaps), then less impact, then names.
    c = scored.candidate
    legs = sum(len(p.legs) for p in c.paths)
    impact = _impact_bps(c.amount_out, scored.ideal_out)
    return (not c.fillable, -c.amount_out, legs, _KIND_ORDER[c.kind], impact, c.description)


def _no_route_reason(
    symbol_in: str, symbol_out: str, amount_in: int, quotes: Sequence[Quote], failures: Sequence[str]
) -> str:
    amount = format_amount(amount_in, get_token(symbol_in).decimals)
    hubs = ", ".join(m for m in INTERMEDIATES if m not in (symbol_in, symbol_out))
    if not quotes and not failures:
        return f"no pool for {symbol_in}/{symbol_out} and no two-hop path through {hubs}"
    reasons = [f"{q.pool_id}: {q.reason}" for q in quotes] + list(failures)
    return f"no route can fill {amount} {symbol_in} -> {symbol_out}: " + "; ".join(reasons)

