"""Values the chain stores and returns."""

from __future__ import annotations

from typing import Callable, Literal

import msgspec

from shared.chain.transaction import SwapIntent, Transaction


class TxRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the chain stores per accepted signature, fixed at acceptance.

    ``landing_slot`` is fixed here, so every reader settles the swap against the same slot and
    sees the same outcome. ``dropped`` records a transaction accepted that will never land.
    """

    transaction: Transaction
    submitted_ms: int
    submitted_slot: int
    last_valid_slot: int
    lands_at_ms: int
    landing_slot: int
    dropped: bool


class SubmitReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """The chain's answer to an accepted submission.

    ``already_processed`` is True when the signature had been accepted before: the existing
    receipt is returned and nothing executes a second time.
    """

    signature: str
    submitted_ms: int
    submitted_slot: int
    last_valid_slot: int
    already_processed: bool = False


class SettleOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The result of executing a swap at a slot: output in base units, or a program error."""

    ok: bool
    amount_out: int = 0
    error: str | None = None


Settle = Callable[[SwapIntent, int], SettleOutcome]
"""Pure function ``(swap, landing_slot) -> SettleOutcome``: the swap program's execution."""


class TxStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What the chain reports about a signature it has seen and not dropped.

    ``slot`` is the landing slot once landed (None while pending); ``confirmations`` counts the
    slots since landing. ``amount_out`` is set when confirmed, ``error`` when failed.
    """

    signature: str
    state: Literal["pending", "confirmed", "failed"]
    slot: int | None = None
    confirmations: int = 0
    amount_out: int | None = None
    error: str | None = None
