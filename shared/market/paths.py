"""Token value paths: every pair's reference price is the ratio of its two tokens' values.

Each token's dollar value follows its own seeded path of ticks (0.1 bp each, see
`shared.market.config`). A pair listed at slot ``R`` at price ``P`` (quote per base) is
worth, at slot ``s``::

    P * 1.00001 ** ((base(s) - base(R)) - (quote(s) - quote(R)))

where ``base(s)`` and ``quote(s)`` are the tokens' path ticks. That is the ratio of
the two values whenever ``P`` is the ratio at ``R``, which holds by construction for
every pair that brings a token to the market: the new token's value is anchored to
``P`` times the other token's value at ``R``. Cross rates then agree: the ticks of
SOL-USDT less those of USDC-USDT are exactly those of SOL-USDC, so a triangle of
reference prices closes to within the rounding of one Q64.64 product.

Genesis pairs must agree with each other exactly (`InconsistentPrices` otherwise). A
pair listed later between two tokens already priced against each other starts exactly
at its own price and converges to the cross rate over `PricePath.arbitrage_slots`, as
arbitrage would close the gap.

Everything is a pure function of ``(seed, path, tokens, pairs)``: listing order decides
which pair anchors a token, never the order pairs were learnt in. Values are exact
Fractions times a whole number of ticks; no float is involved.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Iterable, NamedTuple

from shared.amounts import format_price
from shared.market.config import PairSpec, PricePath, TokenSpec
from shared.market.fixed_point import MAX_EXPONENT, ONE, pow_q64
from shared.market.launches import REFERENCE_USD
from shared.market.noise import smooth_noise, smoothstep, uniform

__all__ = ["TICK_BASE", "InconsistentPrices", "PairAnchor", "TokenPaths", "TokenValue", "tick_factor_q64"]

TICK_BASE = ONE + ONE // 100_000
"""One tick, a tenth of a basis point, as a Q64.64 factor."""

_TICKS_PER_DOUBLING = 69_315  # log(2) / log(1.00001), rounded up


class InconsistentPrices(ValueError):
    """Genesis pair prices that disagree with each other (a cycle of them does not multiply to 1)."""


@lru_cache(maxsize=4096)
def tick_factor_q64(ticks: int) -> int:
    """``1.00001 ** ticks`` as Q64.64."""
    return pow_q64(TICK_BASE, ticks)


class TokenValue(NamedTuple):
    """A token's dollar value at slot ``s``: ``usd * 1.00001 ** (path(s) + offset)`` per whole token.

    Tokens in one ``component`` are priced against each other; a component no dollar
    pair reaches is valued from `shared.market.launches.REFERENCE_USD` (or at $1).
    """

    volatility_pct: int
    usd: Fraction
    offset: int
    component: int
    listed_from_slot: int


class PairAnchor(NamedTuple):
    """Where a pair's price path starts: its tokens' path ticks at its listing slot, and its basis.

    ``basis`` is how many ticks the listing price sits above the cross rate of tokens
    already priced against each other; it decays to nothing over the arbitrage window.
    """

    slot: int
    base_ticks: int
    quote_ticks: int
    basis: int


class TokenPaths:
    """The value path of every token the listed pairs trade, and each pair's anchor on them.

    ``pairs`` are in listing order; tokens are anchored by the earliest listing slot
    that trades them (ties in listing order). ``tokens`` sets volatilities; a token it
    does not name takes the ``volatility_pct`` of the pair that brings it, except the
    quote of a pair whose two tokens are both new, which serves as their unit and stays
    still. Pairs named in ``launched`` came from launches: they may be off the cross
    rate even at slot 0 (and converge to it) where a genesis pair may not.
    """

    def __init__(
        self,
        seed: int,
        path: PricePath,
        tokens: Iterable[TokenSpec],
        pairs: Iterable[PairSpec],
        launched: Iterable[str] = (),
    ) -> None:
        self.seed = seed
        self.path = path
        self._launched = frozenset(launched)
        self._volatility = {token.symbol: token.volatility_pct for token in tokens}
        self._values: dict[str, TokenValue] = {}
        self._anchors: dict[str, PairAnchor] = {}
        self._ticks = lru_cache(maxsize=8192)(self._path_ticks)
        self._components = 0
        for pair in sorted(pairs, key=lambda item: item.listed_from_slot):  # stable: listing order breaks ties
            self._anchors[pair.pair_id] = self._anchor(pair)

    def token_ticks(self, symbol: str, slot: int) -> int:
        """The token's path at ``slot``, in ticks; only differences between slots mean anything."""
        return self._ticks(symbol, self._values[symbol].volatility_pct, slot)

    def pair_ticks(self, pair_id: str, slot: int) -> int:
        """How far the pair's reference price is from its listing price at ``slot``, in ticks."""
        anchor = self._anchors[pair_id]
        base, _, quote = pair_id.partition("-")
        moved = self.token_ticks(base, slot) - anchor.base_ticks
        moved -= self.token_ticks(quote, slot) - anchor.quote_ticks
        if anchor.basis:
            moved -= _settled(anchor.basis, slot - anchor.slot, self.path.arbitrage_slots)
        return moved

    def volatility_pct(self, symbol: str) -> int:
        """How much the token moves, in percent of the path's waves."""
        return self._values[symbol].volatility_pct

    def value(self, symbol: str) -> TokenValue:
        """The token's value path; raises KeyError for a token no listed pair trades."""
        return self._values[symbol]

    def usd_price(self, symbol: str, slot: int) -> str:
        """Dollars per whole token at ``slot``, a decimal string."""
        usd = self._usd_at(symbol, slot)
        return format_price(usd.numerator, usd.denominator)

    def _path_ticks(self, symbol: str, volatility_pct: int, slot: int) -> int:
        path = self.path
        ticks = uniform(path.slot_jitter * volatility_pct // 100, self.seed, "usd", symbol, "jitter", slot)
        for index, wave in enumerate(path.waves):
            amplitude = wave.amplitude * volatility_pct // 100
            ticks += smooth_noise(slot, wave.spacing, amplitude, self.seed, "usd", symbol, index)
        return ticks

    def _anchor(self, pair: PairSpec) -> PairAnchor:
        slot, price = pair.listed_from_slot, Fraction(pair.price)
        base, quote = self._values.get(pair.base), self._values.get(pair.quote)
        basis = 0
        if base is None and quote is None:
            self._components += 1
            unit = Fraction(REFERENCE_USD.get(pair.quote, "1"))
            self._place(pair.quote, self._volatility.get(pair.quote, 0), slot, unit, self._components)
            self._place(pair.base, self._volatility.get(pair.base, pair.volatility_pct), slot, unit * price,
                        self._components)
        elif base is None:
            assert quote is not None
            self._place(pair.base, self._volatility.get(pair.base, pair.volatility_pct), slot,
                        price * self._usd_at(pair.quote, slot), quote.component)
        elif quote is None:
            self._place(pair.quote, self._volatility.get(pair.quote, pair.volatility_pct), slot,
                        self._usd_at(pair.base, slot) / price, base.component)
        elif base.component != quote.component:
            # The pair links two groups of tokens priced apart: revalue the younger group
            # so that this pair's price is their cross rate.
            younger, symbol = max((base.component, pair.base), (quote.component, pair.quote))
            if symbol == pair.quote:
                target = self._usd_at(pair.base, slot) / price
            else:
                target = self._usd_at(pair.quote, slot) * price
            self._rescale(younger, base.component + quote.component - younger, target / self._usd_at(symbol, slot))
        else:
            usd_base, usd_quote = self._usd_at(pair.base, slot), self._usd_at(pair.quote, slot)
            cross = usd_base / usd_quote
            if slot == 0 and cross != price and pair.pair_id not in self._launched:
                cross_text = format_price(cross.numerator, cross.denominator, significant_digits=12)
                raise InconsistentPrices(
                    f"pair {pair.pair_id} is priced {pair.price} but the other genesis pairs make it {cross_text}"
                )
            basis = _ticks_between(price, cross)
        return PairAnchor(
            slot=slot,
            base_ticks=self.token_ticks(pair.base, slot),
            quote_ticks=self.token_ticks(pair.quote, slot),
            basis=basis,
        )

    def _place(self, symbol: str, volatility_pct: int, slot: int, usd: Fraction, component: int) -> None:
        # Anchored so that the value is exactly ``usd`` at ``slot``.
        offset = -self._ticks(symbol, volatility_pct, slot)
        self._values[symbol] = TokenValue(volatility_pct, usd, offset, component, slot)

    def _usd_at(self, symbol: str, slot: int) -> Fraction:
        """The value at ``slot``, exact but for the Q64.64 rounding of the tick factor."""
        value = self._values[symbol]
        ticks = self._ticks(symbol, value.volatility_pct, slot) + value.offset
        if ticks == 0:
            return value.usd
        return value.usd * Fraction(tick_factor_q64(_clamp(ticks)), ONE)

    def _rescale(self, component: int, into: int, factor: Fraction) -> None:
        for symbol, value in self._values.items():
            if value.component == component:
                self._values[symbol] = value._replace(usd=value.usd * factor, component=into)


def _settled(basis: int, elapsed: int, window: int) -> int:
    """How much of ``basis`` arbitrage has closed ``elapsed`` slots after listing."""
    if elapsed <= 0:
        return 0
    if elapsed >= window:
        return basis
    return smoothstep(basis, elapsed, window)


def _ticks_between(price: Fraction, cross: Fraction) -> int:
    """The whole number of ticks nearest to ``log(price / cross) / log(1.00001)``, within Q64.64 range."""
    ratio = price / cross
    if ratio == 1:
        return 0
    # Bit lengths place the ratio within a doubling or two; bisection does the rest.
    doublings = ratio.numerator.bit_length() - ratio.denominator.bit_length()
    low = _clamp((doublings - 2) * _TICKS_PER_DOUBLING)
    high = _clamp((doublings + 2) * _TICKS_PER_DOUBLING)
    target = ratio * ONE
    while high - low > 1:  # factor(low) <= target < factor(high), or an end of the range
        middle = (low + high) // 2
        if tick_factor_q64(middle) <= target:
            low = middle
        else:
            high = middle
    below, above = tick_factor_q64(low), tick_factor_q64(high)
    return low if target - below <= above - target else high


def _clamp(ticks: int) -> int:
    return max(-(MAX_EXPONENT - 1), min(MAX_EXPONENT - 1, ticks))

