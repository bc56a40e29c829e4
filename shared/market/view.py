"""The narrow face of a market that routing and settlement need.

`Market` (the simulation) implements it; an adapter reading real pool accounts
could too, without the router or the chain noticing.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shared.market.pools import Pool
from shared.market.quotes import Quote

__all__ = ["MarketView"]


@runtime_checkable
class MarketView(Protocol):
    """Pools and quotes as of a slot."""

    def pools_for(self, token_in: str, token_out: str, slot: int) -> tuple[Pool, ...]:
        """Pools that swap ``token_in`` for ``token_out`` at ``slot``."""
        ...

    def pool(self, pool_id: str, slot: int) -> Pool:
        """One pool as of ``slot``; raises a `KeyError` if it is not listed then."""
        ...

    def quotes(self, token_in: str, token_out: str, amount_in: int, slot: int) -> tuple[Quote, ...]:
        """A quote from every pool for the pair at ``slot``."""
        ...
