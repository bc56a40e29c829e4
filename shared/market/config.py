"""What the simulated market lists and how its prices move.

Every token has a dollar value that follows its own seeded path, and a pair's
reference price is the ratio of its two tokens' values, so cross rates agree:
SOL->USDT->USDC prices SOL as SOL-USDC does (see `shared.market.paths`).

Values move in "ticks" of a tenth of a basis point: a value ``ticks`` away from
where it started is ``start * 1.00001**ticks``. The default path sums four seeded
waves (about 16 s, 3 min, 27 min and 3.3 h between knots at 400 ms slots) plus a
little per-slot jitter, scaled by each token's ``volatility_pct``: at 100 % a token
drifts 0.1-1 % over tens of seconds and a few % over an hour, never more than about
8 % either side of its path's centre (so up to about 16 % from its genesis value).
The stablecoins move at 1 %: a few hundredths of a percent around their peg.
"""

from __future__ import annotations

import msgspec

from shared.market.cpmm import RAYDIUM_DEFAULT_FEE_PPM

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_TOKENS",
    "CpmmSpec",
    "DlmmSpec",
    "MarketConfig",
    "PairSpec",
    "PricePath",
    "TokenSpec",
    "Wave",
]


class Wave(msgspec.Struct, frozen=True, kw_only=True):
    """One octave of smooth noise: a seeded knot every ``spacing`` slots, at most ``amplitude`` ticks."""

    spacing: int
    amplitude: int


class PricePath(msgspec.Struct, frozen=True, kw_only=True):
    """How token values and per-venue offsets move, in ticks of 0.1 bp."""

    waves: tuple[Wave, ...] = (
        Wave(spacing=40, amplitude=250),
        Wave(spacing=400, amplitude=1_000),
        Wave(spacing=4_000, amplitude=2_500),
        Wave(spacing=30_000, amplitude=4_000),
    )
    slot_jitter: int = 20
    venue_offset: Wave = Wave(spacing=150, amplitude=30)
    """Each pool drifts this far from the pair's reference price, so venues disagree.

    A few basis points, well inside any pool's fee: each venue wins some orders, yet no
    cycle of pools pays back more than went in.
    """
    volatility_window: int = 75
    """A DLMM pool's volatility reference reflects how far its price moved over this many slots."""
    arbitrage_slots: int = 150
    """A pair listed at a price off the cross rate of two tokens already traded converges to it over this many slots."""


class CpmmSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A Raydium pool for a pair; ``depth`` is its quote-token reserve at the genesis price."""

    depth: str
    fee_ppm: int = RAYDIUM_DEFAULT_FEE_PPM


class DlmmSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A Meteora pair: bin step and fee parameters as on chain, and its liquidity shape.

    ``bin_depth`` is the quote-token value of the bins next to the active one; it
    tapers linearly to nothing ``bins_each_side + 1`` bins away.
    """

    bin_step: int
    base_factor: int
    variable_fee_control: int
    max_volatility_accumulator: int
    bin_depth: str
    bins_each_side: int = 70


class TokenSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How far a token's dollar value moves: ``volatility_pct`` of the `PricePath` waves."""

    symbol: str
    volatility_pct: int


class PairSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A listed pair: ``price`` is quote tokens per base token at genesis.

    For a DLMM pool the base token is X and the quote token is Y. A pair with
    ``listed_from_slot > 0`` launches at that slot and has no pools before it; its
    ``price`` is its reference price at that slot. Genesis prices must agree with each
    other (SOL-USDT must be SOL-USDC times USDC-USDT, exactly); the market refuses
    a config whose prices allow a cycle.

    ``volatility_pct`` is the volatility of a token this pair brings to the market
    when `MarketConfig.tokens` does not name it (a launched token, say); a pair's
    own price moves with its two tokens.
    """

    base: str
    quote: str
    price: str
    cpmm: CpmmSpec | None = None
    dlmm: DlmmSpec | None = None
    volatility_pct: int = 100
    listed_from_slot: int = 0

    @property
    def pair_id(self) -> str:
        """``"BASE-QUOTE"``, e.g. ``"SOL-USDC"``."""
        return f"{self.base}-{self.quote}"


DEFAULT_TOKENS: tuple[TokenSpec, ...] = (
    TokenSpec(symbol="USDC", volatility_pct=1),
    TokenSpec(symbol="USDT", volatility_pct=1),
    TokenSpec(symbol="SOL", volatility_pct=100),
    TokenSpec(symbol="BONK", volatility_pct=200),
    TokenSpec(symbol="JUP", volatility_pct=130),
    TokenSpec(symbol="RAY", volatility_pct=120),
    TokenSpec(symbol="WIF", volatility_pct=250),
)
"""The established tokens' volatilities: stablecoins barely move, memecoins move most."""


class MarketConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Every pair listed at genesis (or from a fixed slot), the tokens' volatilities and their path.

    Pairs launched while the engine runs are not here: `Market.add_launch` adds them.
    """

    pairs: tuple[PairSpec, ...]
    tokens: tuple[TokenSpec, ...] = DEFAULT_TOKENS
    path: PricePath = PricePath()


DEFAULT_CONFIG = MarketConfig(
    pairs=(
        PairSpec(
            base="SOL", quote="USDC", price="150",
            cpmm=CpmmSpec(depth="15000000"),
            dlmm=DlmmSpec(bin_step=10, base_factor=20_000, variable_fee_control=40_000,
                          max_volatility_accumulator=350_000, bin_depth="150000"),
        ),
        PairSpec(
            base="SOL", quote="USDT", price="150",
            cpmm=CpmmSpec(depth="4000000"),
            # A 0.25 % base fee, as on its Raydium pool: with its finer bins and a 1 bp stablecoin
            # hop, a cheaper pool would route small SOL-USDC orders through USDT a third of the time.
            dlmm=DlmmSpec(bin_step=5, base_factor=50_000, variable_fee_control=120_000,
                          max_volatility_accumulator=350_000, bin_depth="40000"),
        ),
        PairSpec(
            base="BONK", quote="SOL", price="0.000000135",
            cpmm=CpmmSpec(depth="3000"),
            dlmm=DlmmSpec(bin_step=25, base_factor=10_000, variable_fee_control=15_000,
                          max_volatility_accumulator=250_000, bin_depth="25"),
        ),
        PairSpec(
            base="BONK", quote="USDC", price="0.00002025",
            dlmm=DlmmSpec(bin_step=20, base_factor=10_000, variable_fee_control=20_000,
                          max_volatility_accumulator=250_000, bin_depth="20000"),
        ),
        PairSpec(base="JUP", quote="USDC", price="0.85", cpmm=CpmmSpec(depth="2000000")),
        PairSpec(base="RAY", quote="SOL", price="0.022", cpmm=CpmmSpec(depth="8000")),
        PairSpec(
            base="WIF", quote="SOL", price="0.0133",
            dlmm=DlmmSpec(bin_step=50, base_factor=8_000, variable_fee_control=7_500,
                          max_volatility_accumulator=150_000, bin_depth="40"),
        ),
        PairSpec(
            base="USDC", quote="USDT", price="1",
            dlmm=DlmmSpec(bin_step=1, base_factor=10_000, variable_fee_control=0,
                          max_volatility_accumulator=0, bin_depth="500000"),
        ),
    ),
)
"""Eight pairs: SOL-USDC, SOL-USDT and BONK-SOL on both venues; the rest on one venue only.

Genesis prices are one set of dollar values (USDC = USDT = $1, SOL $150, BONK $0.00002025,
JUP $0.85, RAY $3.30, WIF $1.995) seen from each pair.
"""
