"""The swap program of the simulated chain: the market's own math at the landing slot."""

from __future__ import annotations

from shared.chain import SettleOutcome, SwapIntent
from shared.market.model import Market
from shared.market.quotes import execute_on_pool


def settler(market: Market):
    def settle(swap: SwapIntent, slot: int) -> SettleOutcome:
        try:
            pool = market.pool(swap.pool_id, slot)
        except KeyError:
            return SettleOutcome(ok=False, error=f"pool {swap.pool_id} does not exist at slot {slot}")
        # The chain enforces min_amount_out itself; settle only computes what the pool gives.
        result = execute_on_pool(pool, swap.token_in, swap.amount_in, 0)
        if not result.ok:
            return SettleOutcome(ok=False, error=result.failure)
        return SettleOutcome(ok=True, amount_out=result.amount_out)

    return settle
