"""What the simulated market lists and how its prices move.

Prices move in "ticks" of a tenth of a basis point: a price ``ticks`` away from the
pair's genesis price is ``genesis * 1.00001**ticks``. The default path sums four
seeded waves (about 16 s, 3 min, 27 min and 3.3 h between knots at 400 ms slots)
plus a little per-slot jitter, scaled by each pair's ``volatility_pct``: prices drift
0.1-1 % over tens of seconds and a few % over an hour, never more than about 8 %
from genesis at 100 % volatility.
"""

from __future__ import annotations

import msgspec

from shared.market.cpmm import RAYDIUM_DEFAULT_FEE_PPM

__all__ = ["DEFAULT_CONFIG", "CpmmSpec", "DlmmSpec", "MarketConfig", "PairSpec", "PricePath", "Wave"]


class Wave(msgspec.Struct, frozen=True, kw_only=True):
    """One octave of smooth noise: a seeded knot every ``spacing`` slots, at most ``amplitude`` ticks."""

    spacing: int
    amplitude: int


class PricePath(msgspec.Struct, frozen=True, kw_only=True):
    """How reference prices and per-venue offsets move, in ticks of 0.1 bp."""

    waves: tuple[Wave, ...] = (
        Wave(spacing=40, amplitude=250),
        Wave(spacing=400, amplitude=1_000),
        Wave(spacing=4_000, amplitude=2_500),
        Wave(spacing=30_000, amplitude=4_000),
    )
    slot_jitter: int = 20
    venue_offset: Wave = Wave(spacing=150, amplitude=150)
    """Each pool drifts this far from the pair's reference price, so venues disagree."""
    volatility_window: int = 75
    """A DLMM pool's volatility reference reflects how far its price moved over this many slots."""


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


class PairSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A listed pair: ``price`` is quote tokens per base token at genesis.

    For a DLMM pool the base token is X and the quote token is Y. A pair with
    ``listed_from_slot > 0`` launches at that slot and has no pools before it; its
    ``price`` is its reference price at that slot, where its path starts (so it can
    drift up to twice as far from ``price`` as a genesis pair can).
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


class MarketConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Every pair listed at genesis (or from a fixed slot) and the price path they follow.

    Pairs launched while the engine runs are not here: `Market.add_launch` adds them.
    """

    pairs: tuple[PairSpec, ...]
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
            base="SOL", quote="USDT", price="150.05",
            cpmm=CpmmSpec(depth="4000000"),
            dlmm=DlmmSpec(bin_step=5, base_factor=40_000, variable_fee_control=120_000,
                          max_volatility_accumulator=350_000, bin_depth="40000"),
        ),
        PairSpec(
            base="BONK", quote="SOL", price="0.000000135", volatility_pct=200,
            cpmm=CpmmSpec(depth="3000"),
            dlmm=DlmmSpec(bin_step=25, base_factor=10_000, variable_fee_control=15_000,
                          max_volatility_accumulator=250_000, bin_depth="25"),
        ),
        PairSpec(
            base="BONK", quote="USDC", price="0.00002", volatility_pct=200,
            dlmm=DlmmSpec(bin_step=20, base_factor=10_000, variable_fee_control=20_000,
                          max_volatility_accumulator=250_000, bin_depth="20000"),
        ),
        PairSpec(base="JUP", quote="USDC", price="0.85", volatility_pct=130, cpmm=CpmmSpec(depth="2000000")),
        PairSpec(base="RAY", quote="SOL", price="0.022", volatility_pct=120, cpmm=CpmmSpec(depth="8000")),
        PairSpec(
            base="WIF", quote="SOL", price="0.0133", volatility_pct=250,
            dlmm=DlmmSpec(bin_step=50, base_factor=8_000, variable_fee_control=7_500,
                          max_volatility_accumulator=150_000, bin_depth="40"),
        ),
        PairSpec(
            base="USDC", quote="USDT", price="1", volatility_pct=2,
            dlmm=DlmmSpec(bin_step=1, base_factor=10_000, variable_fee_control=0,
                          max_volatility_accumulator=0, bin_depth="500000"),
        ),
    ),
)
"""Eight pairs: SOL-USDC, SOL-USDT and BONK-SOL on both venues; the rest on one venue only."""
