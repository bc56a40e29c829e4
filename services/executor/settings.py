from __future__ import annotations

from shared.simulation import SimSettings


class ExecutorSettings(SimSettings, frozen=True, kw_only=True):
    ops_port: int = 9102
    concurrency: int = 512
    executor_max_attempts: int = 3
    executor_backoff_base_ms: int = 250
    executor_backoff_max_ms: int = 5_000
    compute_unit_limit: int = 200_000
    #: Priority fee in micro-lamports per compute unit, raised by half on each retry.
    compute_unit_price: int = 50_000
    #: Seed of the simulated wallet that signs and pays for every transaction.
    wallet_seed: str = "engine-wallet"
