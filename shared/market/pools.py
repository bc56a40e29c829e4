"""What both venues' pools have in common: tokens, direction, spot price, venue name."""

from __future__ import annotations

from typing import TypeAlias

from shared.market.cpmm import CpmmPool
from shared.market.dlmm import DlmmPool
from shared.market.fixed_point import ONE
from shared.market.swap import SwapResult

__all__ = [
    "VENUE_CPMM",
    "VENUE_DLMM",
    "VENUES",
    "Pool",
    "other_token",
    "pool_tokens",
    "spot_ratio",
    "swap_on_pool",
    "venue_of",
]

VENUE_CPMM = "raydium-cpmm"
VENUE_DLMM = "meteora-dlmm"
VENUES = (VENUE_CPMM, VENUE_DLMM)

Pool: TypeAlias = CpmmPool | DlmmPool


def venue_of(pool: Pool) -> str:
    """The venue name a pool belongs to."""
    return VENUE_CPMM if isinstance(pool, CpmmPool) else VENUE_DLMM


def pool_tokens(pool: Pool) -> tuple[str, str]:
    """The pool's two token symbols (A, B for a CPMM; X, Y for a DLMM)."""
    if isinstance(pool, CpmmPool):
        return pool.token_a, pool.token_b
    return pool.token_x, pool.token_y


def other_token(pool: Pool, token_in: str) -> str:
    """The token a swap selling ``token_in`` receives."""
    first, second = pool_tokens(pool)
    if token_in == first:
        return second
    if token_in == second:
        return first
    raise ValueError(f"pool {pool.pool_id} does not trade {token_in}")


def spot_ratio(pool: Pool, token_in: str) -> tuple[int, int]:
    """Marginal price before any trade as ``(num, den)``: base units out per base unit in."""
    if isinstance(pool, CpmmPool):
        reserve_in, reserve_out = pool.reserves_for(token_in)
        return reserve_out, reserve_in
    price = pool.spot_price_q64
    return (price, ONE) if pool.is_swap_for_y(token_in) else (ONE, price)


def swap_on_pool(pool: Pool, token_in: str, amount_in: int) -> SwapResult:
    """Run an exact-input swap through whichever venue's math the pool uses."""
    return pool.swap(token_in, amount_in)
