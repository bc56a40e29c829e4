"""Deterministic per-signature draws: which failure a submission suffers and when it lands.

Draws hash (seed, purpose, signature), so a run is reproducible, every replica draws the same
for the same transaction, and a rebuilt transaction (new blockhash, new signature) draws afresh.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from shared.chain.config import ChainConfig

FailureKind = Literal["node_busy", "blockhash_not_found", "dropped"]


def _draw(seed: str, purpose: str, signature: str) -> int:
    digest = hashlib.sha256(f"{purpose}\x1f{seed}\x1f{signature}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def failure_for(config: ChainConfig, signature: str) -> FailureKind | None:
    """The transient failure the submission of ``signature`` suffers, or None."""
    # 53 bits map exactly onto [0, 1) as a float, so rate 1.0 always fails and 0.0 never does.
    if (_draw(config.seed, "fails", signature) >> 11) / 2**53 >= config.failure_rate:
        return None
    mix = config.failure_mix
    pick = _draw(config.seed, "failure-kind", signature) % (mix.node_busy + mix.blockhash_not_found + mix.dropped)
    if pick < mix.node_busy:
        return "node_busy"
    if pick < mix.node_busy + mix.blockhash_not_found:
        return "blockhash_not_found"
    return "dropped"


def confirm_delay_for(config: ChainConfig, signature: str) -> int:
    """Milliseconds between the acceptance of ``signature`` and its landing."""
    lo, hi = config.confirm_delay_ms
    return lo + _draw(config.seed, "confirm-delay", signature) % (hi - lo + 1)
