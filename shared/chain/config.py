"""Chain settings: how slow and how unreliable the simulated chain is."""

from __future__ import annotations

import msgspec


class FailureMix(msgspec.Struct, frozen=True, kw_only=True):
    """Relative weights of the transient failures a failing submission suffers.

    ``node_busy`` and ``blockhash_not_found`` refuse the submission; ``dropped`` accepts it and
    the transaction never lands.
    """

    node_busy: int = 1
    blockhash_not_found: int = 1
    dropped: int = 1

    def __post_init__(self) -> None:
        weights = (self.node_busy, self.blockhash_not_found, self.dropped)
        if min(weights) < 0 or sum(weights) == 0:
            raise ValueError(f"failure weights must be non-negative and not all zero: {weights}")


class ChainConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Behaviour of the simulated chain. Every replica sharing a chain must share this config.

    ``failure_rate`` is the probability (0..1) that one submission suffers a transient failure.
    Delays are inclusive (min, max) millisecond ranges. Real Solana keeps a blockhash valid for
    150 slots; the default 25 lets a dropped transaction be detected in about 10 s of 400 ms slots.
    """

    seed: str = "sim-chain"
    failure_rate: float = 0.0
    failure_mix: FailureMix = FailureMix()
    confirm_delay_ms: tuple[int, int] = (1000, 3000)
    rpc_latency_ms: tuple[int, int] = (10, 50)
    blockhash_ttl_slots: int = 25

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be within 0..1, got {self.failure_rate}")
        for name in ("confirm_delay_ms", "rpc_latency_ms"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be a (min, max) range with 0 <= min <= max, got {(lo, hi)}")
        if self.blockhash_ttl_slots < 1:
            raise ValueError(f"blockhash_ttl_slots must be at least 1, got {self.blockhash_ttl_slots}")
