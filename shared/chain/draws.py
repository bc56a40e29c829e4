"""Deterministic draws per attempt: which failure a submission suffers and when it lands.

Draws hash (seed, purpose, key), where the key names the sender's attempt: the transaction's
memo when it carries one (the executor writes `order:<orderId>:<attempt>`), else its
signature. A signature covers the recent blockhash, that is the instant the transaction was
built, so draws keyed on it handed the same orders different faults on a faster or a slower
machine, and nobody could say beforehand or reproduce afterwards which attempt would fail. A
real node's busy spells and drops do not depend on which recent blockhash a transaction names
either. Keyed on the attempt, the faults are a property of the workload and the seed: a run is
reproducible from its orders alone, every replica draws the same for one attempt, a retry
(a new attempt, a new memo) draws afresh, and the rate and mix are unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from shared.chain.config import ChainConfig
from shared.chain.transaction import Transaction, memo_of

FailureKind = Literal["node_busy", "blockhash_not_found", "dropped"]


def draw_key(tx: Transaction) -> str:
    """What the draws for ``tx`` hash: its memo, else its signature."""
    memo = memo_of(tx.message)
    return memo if memo is not None else tx.signature


def _draw(seed: str, purpose: str, key: str) -> int:
    digest = hashlib.sha256(f"{purpose}\x1f{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def failure_for(config: ChainConfig, key: str) -> FailureKind | None:
    """The transient failure the submission drawing ``key`` (see `draw_key`) suffers, or None."""
    # 53 bits map exactly onto [0, 1) as a float, so rate 1.0 always fails and 0.0 never does.
    if (_draw(config.seed, "fails", key) >> 11) / 2**53 >= config.failure_rate:
        return None
    mix = config.failure_mix
    pick = _draw(config.seed, "failure-kind", key) % (mix.node_busy + mix.blockhash_not_found + mix.dropped)
    if pick < mix.node_busy:
        return "node_busy"
    if pick < mix.node_busy + mix.blockhash_not_found:
        return "blockhash_not_found"
    return "dropped"


def confirm_delay_for(config: ChainConfig, key: str) -> int:
    """Milliseconds between the acceptance of the submission drawing ``key`` and its landing."""
    lo, hi = config.confirm_delay_ms
    return lo + _draw(config.seed, "confirm-delay", key) % (hi - lo + 1)
