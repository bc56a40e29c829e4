"""The swap program of the simulated chain: the market's own math at the landing slot."""

from __future__ import annotations

from shared.chain import SettleOutcome, SwapIntent
from shared.chain.transaction import SwapPath
from shared.market.model import Market
from shared.market.quotes import execute_on_pool


def settler(market: Market):
    """The chain's `Settle` function over ``market``: what a swap pays at a slot, or why it fails.

    A single-pool swap sells ``amount_in`` into ``pool_id``. A swap with paths runs each
    path leg by leg, every leg selling all the previous leg received, and pays the sum
    of the paths; any leg that cannot fill fails the whole transaction. The chain, not
    this function, holds the total to ``min_amount_out``.
    """

    def settle(swap: SwapIntent, slot: int) -> SettleOutcome:
        if not swap.paths:
            return _swap(market, swap.pool_id, swap.token_in, swap.amount_in, slot)
        total = 0
        for number, path in enumerate(swap.paths, start=1):
            outcome = _path(market, path, slot)
            if not outcome.ok:
                return SettleOutcome(ok=False, error=f"path {number}: {outcome.error}")
            total += outcome.amount_out
        return SettleOutcome(ok=True, amount_out=total)

    return settle


def _path(market: Market, path: SwapPath, slot: int) -> SettleOutcome:
    amount = path.amount_in
    for number, leg in enumerate(path.legs, start=1):
        if amount <= 0:
            return SettleOutcome(ok=False, error=f"leg {number} ({leg.pool_id}) has nothing to sell")
        outcome = _swap(market, leg.pool_id, leg.token_in, amount, slot, leg.token_out)
        if not outcome.ok:
            return SettleOutcome(ok=False, error=f"leg {number} ({leg.pool_id}): {outcome.error}")
        amount = outcome.amount_out
    return SettleOutcome(ok=True, amount_out=amount)


def _swap(
    market: Market, pool_id: str, token_in: str, amount_in: int, slot: int, token_out: str | None = None
) -> SettleOutcome:
    try:
        pool = market.pool(pool_id, slot)
    except KeyError:
        return SettleOutcome(ok=False, error=f"pool {pool_id} does not exist at slot {slot}")
    try:
        # The chain enforces min_amount_out itself; settle only computes what the pool gives.
        result = execute_on_pool(pool, token_in, amount_in, 0)
    except ValueError as exc:  # the pool does not trade token_in
        return SettleOutcome(ok=False, error=str(exc))
    if not result.ok:
        return SettleOutcome(ok=False, error=result.failure)
    if token_out is not None and result.token_out != token_out:
        return SettleOutcome(ok=False, error=f"pool {pool_id} pays {result.token_out}, not {token_out}")
    return SettleOutcome(ok=True, amount_out=result.amount_out)
