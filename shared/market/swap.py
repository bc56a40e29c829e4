"""The result of running a swap through one pool's math."""

from __future__ import annotations

import msgspec

__all__ = ["SwapResult"]


class SwapResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a pool gives for an exact-input swap, all in base units.

    ``amount_in_consumed`` is what the pool took, fee included; it is less than
    ``amount_in`` only when the pool ran out of liquidity, and then ``filled`` is
    False. ``fee`` is in units of the input token and is part of the consumed input.
    """

    amount_in: int
    amount_in_consumed: int
    amount_out: int
    fee: int
    filled: bool = True
