"""Settings of the simulated market and chain, shared by the router and the executor.

`SIM_PROFILE=demo` gives realistic latencies (quotes 100-300 ms, confirmation 1-3 s,
some transient failures); `SIM_PROFILE=zero` makes every delay zero and nothing fail,
for benchmarks and fast tests. Any single value can still be set on its own.
"""

from __future__ import annotations


from shared.chain import ChainConfig, SlotClock
from shared.clock import Clock
from shared.settings import Common

PROFILES: dict[str, dict[str, float | int]] = {
    "demo": {
        "quote_delay_ms_min": 100,
        "quote_delay_ms_max": 300,
        "confirm_delay_ms_min": 1000,
        "confirm_delay_ms_max": 3000,
        "rpc_latency_ms_min": 10,
        "rpc_latency_ms_max": 50,
        "chain_failure_rate": 0.1,
    },
    "zero": {
        "quote_delay_ms_min": 0,
        "quote_delay_ms_max": 0,
        "confirm_delay_ms_min": 0,
        "confirm_delay_ms_max": 0,
        "rpc_latency_ms_min": 0,
        "rpc_latency_ms_max": 0,
        "chain_failure_rate": 0.0,
    },
}


class SimSettings(Common, frozen=True, kw_only=True):
    """Every replica of every service must agree on these (seed, genesis, slot length)."""

    sim_profile: str = "demo"
    sim_seed: int = 42
    sim_genesis_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    slot_ms: int = 400
    blockhash_ttl_slots: int = 25
    quote_delay_ms_min: int | None = None
    quote_delay_ms_max: int | None = None
    confirm_delay_ms_min: int | None = None
    confirm_delay_ms_max: int | None = None
    rpc_latency_ms_min: int | None = None
    rpc_latency_ms_max: int | None = None
    chain_failure_rate: float | None = None
    #: Pools that launch while the engine runs, e.g. "PUMP-USDC@+60s:0.002:50000,MEW-SOL@+120s".
    sim_launches: str = ""

    def __post_init__(self) -> None:
        if self.sim_profile not in PROFILES:
            raise ValueError(f"SIM_PROFILE must be one of {', '.join(PROFILES)}, not {self.sim_profile!r}")

    def value(self, name: str) -> float | int:
        own = getattr(self, name)
        return PROFILES[self.sim_profile][name] if own is None else own

    def quote_delay_ms(self) -> tuple[int, int]:
        return int(self.value("quote_delay_ms_min")), int(self.value("quote_delay_ms_max"))

    def chain_config(self) -> ChainConfig:
        return ChainConfig(
            seed=f"chain-{self.sim_seed}",
            failure_rate=float(self.value("chain_failure_rate")),
            confirm_delay_ms=(int(self.value("confirm_delay_ms_min")), int(self.value("confirm_delay_ms_max"))),
            rpc_latency_ms=(int(self.value("rpc_latency_ms_min")), int(self.value("rpc_latency_ms_max"))),
            blockhash_ttl_slots=self.blockhash_ttl_slots,
        )

    def slot_clock(self, clock: Clock) -> SlotClock:
        return SlotClock(genesis_ms=self.sim_genesis_ms, slot_ms=self.slot_ms, now_ms=clock.now_ms)
