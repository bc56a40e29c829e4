"""The deterministic moving market: every pool at every slot, from a seed.

`Market.pools_at` is a pure function of ``(seed, config, slot)``: any replica, any
process, at any time computes the same pools for the same slot, so the router
quoting at slot ``s`` and the chain settling at slot ``s + k`` need no shared state.
Each slot is computed directly (no iteration from genesis); recent results are
memoised because the router asks for the same slot many times.

Trades do not move the simulated pools: each slot's pools are fresh snapshots of
the liquidity providers' positions around the current reference price.

Every token's dollar value follows its own seeded path and each pair's reference price
is the ratio of its two tokens' values (`shared.market.paths`), so cross rates agree:
routing SOL through USDT to USDC gains nothing a real market would not allow. Pools
drift a few basis points from the reference, so venues still disagree.

Pairs launched at run time (`add_launch`) join the same way: their pools are a pure
function of ``(seed, launches, slot)``, absent before the launch slot, so two markets that
know the same launches list the same pools, whatever order they learnt them in.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import isqrt
from typing import Iterable

from shared.amounts import format_price
from shared.market.config import DEFAULT_CONFIG, DlmmSpec, MarketConfig, PairSpec
from shared.market.cpmm import CpmmPool
from shared.market.dlmm import Bin, DlmmPool
from shared.market.fixed_point import ONE, SCALE_OFFSET, get_price_from_id
from shared.market.launches import LaunchConflict, PoolLaunch, listed_pair
from shared.market.noise import smooth_noise, uniform
from shared.market.paths import InconsistentPrices, TokenPaths, tick_factor_q64
from shared.market.pools import VENUE_CPMM, VENUE_DLMM, Pool
from shared.market.quotes import Quote, quote_pool
from shared.market.tokens import get_token

__all__ = ["InconsistentPrices", "Market", "UnknownPool", "pool_id_for"]

_TICKS_PER_BP = 10  # one tick is a tenth of a basis point
_BIN_JITTER_PCT = 20
_REDUCTION_FACTOR_BPS = 5_000  # the share of recent volatility a DLMM pair remembers
_MIN_BIN_ID, _MAX_BIN_ID = -443_636, 443_636


class UnknownPool(KeyError):
    """A pool id the market does not list (or not yet, at that slot)."""

    def __str__(self) -> str:
        return str(self.args[0])


def pool_id_for(venue: str, pair_id: str) -> str:
    """The id of a venue's pool for a pair, e.g. ``"meteora-dlmm:SOL-USDC"``."""
    return f"{venue}:{pair_id}"


class Market:
    """A seeded market of CPMM and DLMM pools whose prices move with the slot.

    ``launches`` lists pairs launched after genesis, as `add_launch` would. Raises
    `InconsistentPrices` when the config's genesis prices disagree with each other.
    """

    def __init__(
        self, seed: int, config: MarketConfig = DEFAULT_CONFIG, launches: Iterable[PoolLaunch] = ()
    ) -> None:
        self.seed = seed
        self.config = config
        self._pairs: dict[str, PairSpec] = {}
        self._genesis_q64: dict[str, int] = {}
        self._cpmm_liquidity: dict[str, int] = {}
        self._genesis_bin: dict[str, int] = {}
        self._launches: dict[str, PoolLaunch] = {}
        for pair in config.pairs:
            self._add_pair(pair)
        self._pool_cache = lru_cache(maxsize=1024)(self._build_pool)
        self._paths = self._token_paths()
        for launch in launches:
            self.add_launch(launch)

    def add_launch(self, launch: PoolLaunch) -> bool:
        """List a pair launched at run time: its pools exist from ``launch.listed_at_slot`` on.

        Returns True when the pair is new, False when this very launch is already known
        (learning a launch twice is harmless). Raises `LaunchConflict` when the market
        already lists the two tokens otherwise: at genesis, or from a different launch
        (the first launch of a pair wins; `shared.launchlog` keeps only that one).
        """
        known = self._launches.get(launch.pair_id)
        if known == launch:
            return False
        taken = listed_pair(launch, self._pairs.values())
        if taken is not None:
            source = "a different launch" if taken.pair_id in self._launches else "genesis"
            raise LaunchConflict(f"{launch.pair_id} cannot launch: {taken.pair_id} is already listed from {source}")
        self._add_pair(launch.pair_spec())
        self._launches[launch.pair_id] = launch
        # Listing order is part of what replicas must agree on (it orders quotes), so it
        # must not depend on the order launches arrived in: genesis pairs, then launches
        # by slot and pair id.
        launched = sorted(self._launches.values(), key=lambda item: (item.listed_at_slot, item.pair_id))
        pairs = {pair_id: pair for pair_id, pair in self._pairs.items() if pair_id not in self._launches}
        pairs.update((item.pair_id, self._pairs[item.pair_id]) for item in launched)
        self._pairs = pairs
        # A launch learnt late may list a token earlier than the launches already known
        # and so re-anchor its value path: reprice everything, forget built pools.
        self._paths = self._token_paths()
        self._pool_cache.cache_clear()
        return True

    def _token_paths(self) -> TokenPaths:
        return TokenPaths(self.seed, self.config.path, self.config.tokens, self._pairs.values(), self._launches)

    def launches(self) -> tuple[PoolLaunch, ...]:
        """Every launch the market has learnt, in listing order."""
        return tuple(self._launches[pair.pair_id] for pair in self._pairs.values() if pair.pair_id in self._launches)

    def _add_pair(self, pair: PairSpec) -> None:
        base, quote = get_token(pair.base), get_token(pair.quote)
        if (base.symbol, quote.symbol) != (pair.base, pair.quote) or base == quote:
            raise ValueError(f"pair {pair.pair_id} must name two different tokens by canonical symbol")
        if pair.pair_id in self._pairs:
            raise ValueError(f"pair {pair.pair_id} is listed twice")
        price = Fraction(pair.price) * 10**quote.decimals / 10**base.decimals
        genesis = price.numerator * ONE // price.denominator
        if genesis <= 0:
            raise ValueError(f"pair {pair.pair_id} needs a positive price")
        self._pairs[pair.pair_id] = pair
        self._genesis_q64[pair.pair_id] = genesis
        if pair.cpmm is not None:
            reserve_y = _quote_units(pair.cpmm.depth, pair)
            reserve_x = (reserve_y << SCALE_OFFSET) // genesis
            self._cpmm_liquidity[pair.pair_id] = isqrt(reserve_x * reserve_y)
        if pair.dlmm is not None:
            step = pair.dlmm.bin_step
            self._genesis_bin[pair.pair_id] = _bin_at_or_below(_centred(genesis, step), step, None)

    def pairs(self) -> tuple[PairSpec, ...]:
        """Every pair the market lists (including ones not launched yet)."""
        return tuple(self._pairs.values())

    def reference_ticks(self, pair_id: str, slot: int) -> int:
        """How far the pair's reference price is from its listing price at ``slot``, in tenths of a bp.

        It is the base token's value path less the quote token's, both counted from the
        pair's listing slot (plus, for a pair listed off the cross rate, the part of the
        gap arbitrage has closed).
        """
        self._pair(pair_id)
        return self._paths.pair_ticks(pair_id, _check_slot(slot))

    def usd_price(self, symbol: str, slot: int) -> str:
        """Dollars per whole ``symbol`` at ``slot``: the value path each of its pairs is a ratio of.

        Raises `UnknownPool` for a token no pair lists (yet, at that slot). Tokens no
        dollar pair reaches are valued from rough reference values.
        """
        token = get_token(symbol).symbol
        try:
            value = self._paths.value(token)
        except KeyError:
            raise UnknownPool(f"no pair lists {token}") from None
        if _check_slot(slot) < value.listed_from_slot:
            raise UnknownPool(f"{token} is not listed until slot {value.listed_from_slot}")
        return self._paths.usd_price(token, slot)

    def reference_price_q64(self, pair_id: str, slot: int) -> int:
        """Reference price at ``slot``: quote base units per base-token base unit, Q64.64."""
        factor = tick_factor_q64(self.reference_ticks(pair_id, slot))
        return self._genesis_q64[pair_id] * factor >> SCALE_OFFSET

    def reference_price(self, pair_id: str, slot: int) -> str:
        """Reference price at ``slot`` for display: quote tokens per base token, a decimal string."""
        pair = self._pair(pair_id)
        price = self.reference_price_q64(pair_id, slot)
        return format_price(price * 10 ** get_token(pair.base).decimals, ONE * 10 ** get_token(pair.quote).decimals)

    def pools_at(self, slot: int) -> dict[str, Pool]:
        """Every pool listed at ``slot``, by pool id."""
        pools: dict[str, Pool] = {}
        for pair in self._pairs.values():
            for pool in self._pair_pools(pair, slot):
                pools[pool.pool_id] = pool
        return pools

    def pools_for(self, token_in: str, token_out: str, slot: int) -> tuple[Pool, ...]:
        """Pools at ``slot`` that swap ``token_in`` for ``token_out`` (either orientation)."""
        wanted = {get_token(token_in).symbol, get_token(token_out).symbol}
        found: list[Pool] = []
        for pair in self._pairs.values():
            if {pair.base, pair.quote} == wanted:
                found.extend(self._pair_pools(pair, slot))
        return tuple(found)

    def pool(self, pool_id: str, slot: int) -> Pool:
        """One pool at ``slot``; raises `UnknownPool` if it is not listed then."""
        venue, _, pair_id = pool_id.partition(":")
        pair = self._pairs.get(pair_id)
        specs = {VENUE_CPMM: pair.cpmm, VENUE_DLMM: pair.dlmm} if pair else {}
        if pair is None or specs.get(venue) is None:
            raise UnknownPool(f"unknown pool {pool_id!r}")
        if _check_slot(slot) < pair.listed_from_slot:
            raise UnknownPool(f"pool {pool_id!r} is not listed until slot {pair.listed_from_slot}")
        return self._pool_cache(venue, pair_id, slot)

    def quotes(self, token_in: str, token_out: str, amount_in: int, slot: int) -> tuple[Quote, ...]:
        """A quote from every pool that trades the pair at ``slot``."""
        symbol_in = get_token(token_in).symbol
        return tuple(quote_pool(pool, symbol_in, amount_in) for pool in self.pools_for(token_in, token_out, slot))

    def _pair(self, pair_id: str) -> PairSpec:
        try:
            return self._pairs[pair_id]
        except KeyError:
            raise UnknownPool(f"unknown pair {pair_id!r}") from None

    def _pair_pools(self, pair: PairSpec, slot: int) -> list[Pool]:
        if _check_slot(slot) < pair.listed_from_slot:
            return []
        venues = [venue for venue, spec in ((VENUE_CPMM, pair.cpmm), (VENUE_DLMM, pair.dlmm)) if spec]
        return [self._pool_cache(venue, pair.pair_id, slot) for venue in venues]

    def _pool_ticks(self, pool_id: str, pair_id: str, slot: int) -> int:
        pair = self._pairs[pair_id]
        wave = self.config.path.venue_offset
        # Venues of a stablecoin pair stay closer together than those of volatile ones.
        volatility = max(self._paths.volatility_pct(pair.base), self._paths.volatility_pct(pair.quote))
        amplitude = wave.amplitude * min(volatility, 100) // 100
        offset = smooth_noise(slot, wave.spacing, amplitude, self.seed, pool_id, "offset")
        return self.reference_ticks(pair_id, slot) + offset

    def _build_pool(self, venue: str, pair_id: str, slot: int) -> Pool:
        pair = self._pairs[pair_id]
        pool_id = pool_id_for(venue, pair_id)
        ticks = self._pool_ticks(pool_id, pair_id, slot)
        price = self._genesis_q64[pair_id] * tick_factor_q64(ticks) >> SCALE_OFFSET
        if venue == VENUE_CPMM:
            assert pair.cpmm is not None
            liquidity_squared = self._cpmm_liquidity[pair_id] ** 2
            return CpmmPool(
                pool_id=pool_id,
                token_a=pair.base,
                token_b=pair.quote,
                reserve_a=max(1, isqrt((liquidity_squared << SCALE_OFFSET) // price)),
                reserve_b=max(1, isqrt(liquidity_squared * price >> SCALE_OFFSET)),
                fee_ppm=pair.cpmm.fee_ppm,
            )
        assert pair.dlmm is not None
        earlier = self._pool_ticks(pool_id, pair_id, max(0, slot - self.config.path.volatility_window))
        return self._dlmm_pool(pair, pair.dlmm, pool_id, price, ticks, abs(ticks - earlier))

    def _dlmm_pool(
        self, pair: PairSpec, spec: DlmmSpec, pool_id: str, price: int, ticks: int, moved: int
    ) -> DlmmPool:
        step = spec.bin_step
        guess = self._genesis_bin[pair.pair_id] + ticks // (step * _TICKS_PER_BP)
        # The active bin is the one whose price is nearest the pool's: trades in it fill
        # at its price, so it sits as often above the pool's price as below, and neither
        # buyers nor sellers get a systematic edge over the other venue.
        centred = _centred(price, step)
        active = _bin_at_or_below(centred, step, guess)
        depth = _quote_units(spec.bin_depth, pair)
        width = spec.bins_each_side + 1
        bins: list[Bin] = []
        for bin_id in range(active - spec.bins_each_side, active + spec.bins_each_side + 1):
            jitter = 100 + uniform(_BIN_JITTER_PCT, self.seed, pool_id, "bin", bin_id)
            value = depth * (width - abs(bin_id - active)) // width * jitter // 100
            bin_price = get_price_from_id(bin_id, step)
            if bin_id < active:
                bins.append(Bin(bin_id=bin_id, reserve_y=value))
            elif bin_id > active:
                bins.append(Bin(bin_id=bin_id, reserve_x=(value << SCALE_OFFSET) // bin_price))
            else:
                # The further the price has climbed through the active bin's range, the
                # more of its X buyers have already taken and replaced with Y.
                next_price = get_price_from_id(bin_id + 1, step)
                reserve_y = value * (centred - bin_price) // (next_price - bin_price)
                reserve_x = ((value - reserve_y) << SCALE_OFFSET) // bin_price
                bins.append(Bin(bin_id=bin_id, reserve_x=reserve_x, reserve_y=reserve_y))
        bins_moved = moved // (step * _TICKS_PER_BP)
        volatility_reference = bins_moved * 10_000 * _REDUCTION_FACTOR_BPS // 10_000
        return DlmmPool(
            pool_id=pool_id,
            token_x=pair.base,
            token_y=pair.quote,
            bin_step=step,
            active_id=active,
            bins=tuple(b for b in bins if b.reserve_x or b.reserve_y),
            base_factor=spec.base_factor,
            variable_fee_control=spec.variable_fee_control,
            max_volatility_accumulator=spec.max_volatility_accumulator,
            volatility_reference=min(volatility_reference, spec.max_volatility_accumulator),
            index_reference=active,
        )


def _check_slot(slot: int) -> int:
    if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0:
        raise ValueError(f"slot must be a non-negative int, got {slot!r}")
    return slot


def _quote_units(amount: str, pair: PairSpec) -> int:
    value = Fraction(amount) * 10 ** get_token(pair.quote).decimals
    return value.numerator // value.denominator


def _centred(price: int, bin_step: int) -> int:
    """The price half a bin step up: the bin at or below it is the bin whose price is nearest ``price``."""
    return price * (20_000 + bin_step) // 20_000


def _bin_at_or_below(price: int, bin_step: int, guess: int | None) -> int:
    """The bin whose price range ``[price(id), price(id + 1))`` holds ``price``."""
    if guess is None:
        low, high = _MIN_BIN_ID, _MAX_BIN_ID
        while low < high:  # the last id whose price is <= the target
            middle = (low + high + 1) // 2
            if _price_or_limit(middle, bin_step) <= price:
                low = middle
            else:
                high = middle - 1
        return low
    while guess > _MIN_BIN_ID and _price_or_limit(guess, bin_step) > price:
        guess -= 1
    while guess < _MAX_BIN_ID and _price_or_limit(guess + 1, bin_step) <= price:
        guess += 1
    return guess


def _price_or_limit(bin_id: int, bin_step: int) -> int:
    # Far bins of a wide step fall outside Q64.64; order them as 0 or "infinity".
    try:
        return get_price_from_id(bin_id, bin_step)
    except ValueError:
        return 0 if bin_id < 0 else 1 << 256
