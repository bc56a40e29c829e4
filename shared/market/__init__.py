"""The simulated DEX market: real integer swap math over seeded, moving pools.

Pure throughout: no I/O, no clock; time enters as an explicit ``slot``.
"""

from shared.market.config import DEFAULT_CONFIG, CpmmSpec, DlmmSpec, MarketConfig, PairSpec, PricePath, Wave
from shared.market.cpmm import CpmmPool, swap_out
from shared.market.dlmm import Bin, DlmmPool, swap_exact_in
from shared.market.fixed_point import get_price_from_id
from shared.market.model import Market, UnknownPool, pool_id_for
from shared.market.pools import VENUE_CPMM, VENUE_DLMM, VENUES, Pool, venue_of
from shared.market.quotes import (
    FAILURE_LIQUIDITY,
    FAILURE_SLIPPAGE,
    ExecutionResult,
    Quote,
    execute_on_pool,
    min_out,
    quote_pool,
)
from shared.market.swap import SwapResult
from shared.market.tokens import TOKENS, Token, UnknownToken, get_token
from shared.market.view import MarketView

__all__ = [
    "DEFAULT_CONFIG",
    "FAILURE_LIQUIDITY",
    "FAILURE_SLIPPAGE",
    "TOKENS",
    "VENUES",
    "VENUE_CPMM",
    "VENUE_DLMM",
    "Bin",
    "CpmmPool",
    "CpmmSpec",
    "DlmmPool",
    "DlmmSpec",
    "ExecutionResult",
    "Market",
    "MarketConfig",
    "MarketView",
    "PairSpec",
    "Pool",
    "PricePath",
    "Quote",
    "SwapResult",
    "Token",
    "UnknownPool",
    "UnknownToken",
    "Wave",
    "execute_on_pool",
    "get_price_from_id",
    "get_token",
    "min_out",
    "pool_id_for",
    "quote_pool",
    "swap_exact_in",
    "swap_out",
    "venue_of",
]
