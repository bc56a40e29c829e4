"""Fixtures for the simulated-chain unit tests: a fake clock, a dict-backed store, messages."""

from __future__ import annotations

import base58

from shared.chain import (
    Blockhash,
    ChainConfig,
    InMemoryChainStore,
    Instruction,
    Message,
    SettleOutcome,
    SimulatedChain,
    SlotClock,
    SwapIntent,
    Transaction,
    signed,
)

SLOT_MS = 400
GENESIS_MS = 1_700_000_000_000
SIGNER = b"test-signer-seed"
FEE_PAYER = base58.b58encode(bytes(range(32))).decode()
SWAP_PROGRAM = "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8"
COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"


class FakeTime:
    """A clock that only moves when told to, or when the chain sleeps."""

    def __init__(self, start_ms: int = GENESIS_MS + 1_000 * SLOT_MS) -> None:
        self.ms = start_ms
        self.slept: list[float] = []

    def now_ms(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.ms += round(seconds * 1000)

    def advance(self, ms: int) -> None:
        self.ms += ms


def settle_double_plus_slot(swap: SwapIntent, landing_slot: int) -> SettleOutcome:
    """Output depends on the landing slot, so tests can see which slot was settled."""
    if swap.pool_id == "broken-pool":
        return SettleOutcome(ok=False, error="PoolPaused")
    return SettleOutcome(ok=True, amount_out=swap.amount_in * 2 + landing_slot)


def make_chain(
    time: FakeTime | None = None, store: InMemoryChainStore | None = None, **config: object
) -> tuple[SimulatedChain, FakeTime, InMemoryChainStore]:
    time = time or FakeTime()
    store = store if store is not None else InMemoryChainStore()
    settings = {"seed": "unit", "confirm_delay_ms": (1000, 1000), "rpc_latency_ms": (0, 0), **config}
    chain = SimulatedChain(
        store, SlotClock(GENESIS_MS, SLOT_MS, time.now_ms), ChainConfig(**settings), settle_double_plus_slot, time.sleep
    )
    return chain, time, store


def make_message(blockhash: Blockhash, **swap: object) -> Message:
    swap_fields = {
        "pool_id": "pool-sol-usdc",
        "token_in": "SOL",
        "token_out": "USDC",
        "amount_in": 1_000_000_000,
        "min_amount_out": 0,
        **swap,
    }
    return Message(
        blockhash=blockhash,
        fee_payer=FEE_PAYER,
        compute_unit_limit=200_000,
        compute_unit_price_micro_lamports=5_000,
        instructions=(
            Instruction(program_id=COMPUTE_BUDGET, name="set_compute_unit_limit", args={"units": 200_000}),
            Instruction(program_id=SWAP_PROGRAM, name="swap", args={"amount_in": 1_000_000_000, "side": "sell"}),
        ),
        swap=SwapIntent(**swap_fields),
    )


async def fresh_tx(chain: SimulatedChain, **swap: object) -> Transaction:
    return signed(make_message(await chain.latest_blockhash(), **swap), SIGNER)
