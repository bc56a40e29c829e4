"""The simulated chain's pure logic, on a fake clock and a dict-backed store."""

from __future__ import annotations

import asyncio

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.chain import (
    Blockhash,
    ChainConfig,
    FailureMix,
    InMemoryChainStore,
    Instruction,
    Message,
    PermanentChainError,
    SettleOutcome,
    SimulatedChain,
    SlotClock,
    SwapIntent,
    Transaction,
    TransientChainError,
    blockhash_at,
    confirm_delay_for,
    failure_for,
    sign,
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


# --- slots and blockhashes -------------------------------------------------------------------


def test_slot_clock_maps_instants_to_slots_and_back() -> None:
    clock = SlotClock(GENESIS_MS, SLOT_MS, lambda: GENESIS_MS + 1_000)
    assert clock.current_slot() == 2
    assert clock.slot_at(GENESIS_MS + 399) == 0
    assert clock.slot_at(GENESIS_MS + 400) == 1
    assert clock.ms_of(7) == GENESIS_MS + 2_800
    assert clock.slot_at(clock.ms_of(7)) == 7


def test_instants_before_genesis_belong_to_slot_zero() -> None:
    assert SlotClock(GENESIS_MS, SLOT_MS, lambda: 0).current_slot() == 0


def test_slot_clock_refuses_a_non_positive_slot_length() -> None:
    with pytest.raises(ValueError):
        SlotClock(GENESIS_MS, 0, lambda: 0)


async def test_latest_blockhash_is_a_deterministic_32_byte_hash_of_seed_and_slot() -> None:
    chain, time, _ = make_chain(blockhash_ttl_slots=25)
    first = await chain.latest_blockhash()
    again = await chain.latest_blockhash()
    time.advance(SLOT_MS)
    later = await chain.latest_blockhash()
    assert first == again
    assert len(base58.b58decode(first.value)) == 32
    assert first.last_valid_slot == first.slot + 25
    assert later.slot == first.slot + 1 and later.value != first.value
    assert blockhash_at("other-seed", first.slot, 25).value != first.value


async def test_a_blockhash_is_valid_from_its_slot_through_its_last_valid_slot_only() -> None:
    chain, time, _ = make_chain(blockhash_ttl_slots=3)
    blockhash = await chain.latest_blockhash()
    assert await chain.is_blockhash_valid(blockhash)
    time.advance(3 * SLOT_MS)
    assert await chain.is_blockhash_valid(blockhash)
    time.advance(SLOT_MS)
    assert not await chain.is_blockhash_valid(blockhash)


async def test_a_forged_blockhash_is_never_valid() -> None:
    chain, _, _ = make_chain()
    real = await chain.latest_blockhash()
    forged = Blockhash(value=blockhash_at("unit", real.slot + 1, 25).value, slot=real.slot, last_valid_slot=10**12)
    assert not await chain.is_blockhash_valid(forged)


# --- signatures ------------------------------------------------------------------------------


def test_the_same_message_always_has_the_same_64_byte_signature() -> None:
    message = make_message(blockhash_at("unit", 5, 25))
    assert sign(message, SIGNER) == sign(make_message(blockhash_at("unit", 5, 25)), SIGNER)
    assert len(base58.b58decode(sign(message, SIGNER))) == 64


def test_a_different_blockhash_signer_or_swap_gives_a_different_signature() -> None:
    base = sign(make_message(blockhash_at("unit", 5, 25)), SIGNER)
    assert sign(make_message(blockhash_at("unit", 6, 25)), SIGNER) != base
    assert sign(make_message(blockhash_at("unit", 5, 25)), b"another-signer") != base
    assert sign(make_message(blockhash_at("unit", 5, 25), min_amount_out=1), SIGNER) != base


def test_instruction_argument_order_does_not_change_the_signature() -> None:
    blockhash = blockhash_at("unit", 5, 25)
    message = make_message(blockhash)
    swap_ix = Instruction(program_id=SWAP_PROGRAM, name="swap", args={"side": "sell", "amount_in": 1_000_000_000})
    reordered = Message(
        blockhash=blockhash,
        fee_payer=message.fee_payer,
        compute_unit_limit=message.compute_unit_limit,
        compute_unit_price_micro_lamports=message.compute_unit_price_micro_lamports,
        instructions=(message.instructions[0], swap_ix),
        swap=message.swap,
    )
    assert sign(reordered, SIGNER) == sign(message, SIGNER)


# --- submission, landing and settlement -----------------------------------------------------


async def test_an_accepted_transaction_is_pending_until_its_confirm_delay_passes() -> None:
    chain, time, _ = make_chain(confirm_delay_ms=(1200, 1200))
    tx = await fresh_tx(chain)
    receipt = await chain.submit(tx)
    assert receipt.signature == tx.signature and not receipt.already_processed
    assert receipt.last_valid_slot == tx.message.blockhash.last_valid_slot
    time.advance(1199)
    status = await chain.signature_status(tx.signature)
    assert status is not None and status.state == "pending" and status.slot is None


async def test_a_landed_swap_is_confirmed_with_the_output_settled_at_its_landing_slot() -> None:
    chain, time, _ = make_chain(confirm_delay_ms=(1200, 1200))
    tx = await fresh_tx(chain)
    receipt = await chain.submit(tx)
    landing_slot = receipt.submitted_slot + 3
    time.advance(1200)
    status = await chain.signature_status(tx.signature)
    assert status is not None and status.state == "confirmed"
    assert status.slot == landing_slot
    assert status.amount_out == 2_000_000_000 + landing_slot
    assert status.error is None


async def test_confirmations_count_the_slots_since_landing() -> None:
    chain, time, _ = make_chain(confirm_delay_ms=(0, 0))
    tx = await fresh_tx(chain)
    await chain.submit(tx)
    first = await chain.signature_status(tx.signature)
    time.advance(5 * SLOT_MS)
    later = await chain.signature_status(tx.signature)
    assert first is not None and first.confirmations == 0
    assert later is not None and later.confirmations == 5 and later.slot == first.slot


async def test_a_swap_the_program_rejects_lands_as_failed_with_the_program_error() -> None:
    chain, time, _ = make_chain()
    tx = await fresh_tx(chain, pool_id="broken-pool")
    await chain.submit(tx)
    time.advance(1000)
    status = await chain.signature_status(tx.signature)
    assert status is not None and status.state == "failed"
    assert status.error == "PoolPaused" and status.amount_out is None


async def test_the_swap_program_fails_a_swap_whose_output_is_below_its_minimum() -> None:
    chain, time, _ = make_chain()
    tx = await fresh_tx(chain, min_amount_out=3_000_000_000)
    await chain.submit(tx)
    time.advance(1000)
    status = await chain.signature_status(tx.signature)
    assert status is not None and status.state == "failed"
    assert status.error is not None and status.error.startswith("ExceededSlippage")


async def test_an_unknown_signature_has_no_status() -> None:
    chain, _, _ = make_chain()
    assert await chain.signature_status(sign(make_message(blockhash_at("unit", 1, 25)), SIGNER)) is None


async def test_resubmitting_a_signature_returns_the_first_receipt_and_records_nothing_new() -> None:
    chain, time, store = make_chain()
    tx = await fresh_tx(chain)
    first = await chain.submit(tx)
    time.advance(500)
    second = await chain.submit(tx)
    assert second.already_processed
    assert (second.submitted_ms, second.submitted_slot) == (first.submitted_ms, first.submitted_slot)
    assert len(store.values) == 1


async def test_concurrent_submits_of_one_signature_execute_once() -> None:
    chain, _, store = make_chain()
    tx = await fresh_tx(chain)
    receipts = await asyncio.gather(*(chain.submit(tx) for _ in range(5)))
    assert [r.already_processed for r in receipts].count(False) == 1
    assert len({(r.signature, r.submitted_ms, r.submitted_slot, r.last_valid_slot) for r in receipts}) == 1
    assert len(store.values) == 1


async def test_another_replica_on_the_same_store_sees_the_same_outcome() -> None:
    chain, time, store = make_chain()
    tx = await fresh_tx(chain)
    await chain.submit(tx)
    time.advance(2000)
    replica, _, _ = make_chain(time=time, store=store)
    assert await replica.signature_status(tx.signature) == await chain.signature_status(tx.signature)
    assert (await replica.submit(tx)).already_processed


# --- expiry -----------------------------------------------------------------------------------


async def test_a_transaction_with_an_expired_blockhash_is_refused_and_never_lands() -> None:
    chain, time, store = make_chain(blockhash_ttl_slots=5)
    tx = await fresh_tx(chain)
    time.advance(6 * SLOT_MS)
    with pytest.raises(TransientChainError) as refused:
        await chain.submit(tx)
    assert refused.value.kind == "blockhash_expired"
    assert store.values == {}
    assert await chain.signature_status(tx.signature) is None


async def test_a_transaction_is_still_accepted_in_the_last_valid_slot() -> None:
    chain, time, _ = make_chain(blockhash_ttl_slots=5, confirm_delay_ms=(0, 0))
    tx = await fresh_tx(chain)
    time.advance(5 * SLOT_MS + SLOT_MS - 1)
    assert not (await chain.submit(tx)).already_processed
    status = await chain.signature_status(tx.signature)
    assert status is not None and status.state == "confirmed"


async def test_a_transaction_that_would_land_after_its_blockhash_expired_is_lost() -> None:
    chain, time, _ = make_chain(blockhash_ttl_slots=2, confirm_delay_ms=(2000, 2000))
    tx = await fresh_tx(chain)
    receipt = await chain.submit(tx)
    for _ in range(10):
        time.advance(SLOT_MS)
        assert await chain.signature_status(tx.signature) is None
    assert receipt.last_valid_slot < (await chain.current_slot())


async def test_a_blockhash_from_a_slot_the_node_has_not_reached_is_not_found() -> None:
    chain, _, _ = make_chain()
    ahead = blockhash_at("unit", await chain.current_slot() + 3, 25)
    with pytest.raises(TransientChainError) as refused:
        await chain.submit(signed(make_message(ahead), SIGNER))
    assert refused.value.kind == "blockhash_not_found"


async def test_a_blockhash_this_chain_never_produced_is_a_permanent_error() -> None:
    chain, _, _ = make_chain()
    slot = await chain.current_slot()
    with pytest.raises(PermanentChainError):
        await chain.submit(signed(make_message(blockhash_at("another-chain", slot, 25)), SIGNER))


# --- transient failures ---------------------------------------------------------------------


async def test_a_dropped_transaction_is_accepted_but_never_seen_even_after_its_blockhash_expires() -> None:
    chain, time, store = make_chain(failure_rate=1.0, failure_mix=FailureMix(node_busy=0, blockhash_not_found=0))
    tx = await fresh_tx(chain)
    receipt = await chain.submit(tx)
    assert not receipt.already_processed and len(store.values) == 1
    for _ in range(40):
        time.advance(SLOT_MS)
        assert await chain.signature_status(tx.signature) is None
    assert not await chain.is_blockhash_valid(tx.message.blockhash)


@pytest.mark.parametrize("kind", ["node_busy", "blockhash_not_found"])
async def test_a_refused_submission_records_nothing(kind: str) -> None:
    mix = FailureMix(**{name: int(name == kind) for name in ("node_busy", "blockhash_not_found", "dropped")})
    chain, _, store = make_chain(failure_rate=1.0, failure_mix=mix)
    tx = await fresh_tx(chain)
    with pytest.raises(TransientChainError) as refused:
        await chain.submit(tx)
    assert refused.value.kind == kind
    assert store.values == {}
    assert await chain.signature_status(tx.signature) is None


async def test_a_retry_with_a_fresh_blockhash_draws_its_failure_independently() -> None:
    chain, time, _ = make_chain(failure_rate=0.5)
    outcomes = set()
    for _ in range(40):
        tx = await fresh_tx(chain)
        outcomes.add(failure_for(chain.config, tx.signature))
        time.advance(SLOT_MS)
    assert None in outcomes and len(outcomes) > 1


def test_failure_draws_are_reproducible_and_match_the_configured_rate_and_mix() -> None:
    config = ChainConfig(seed="stats", failure_rate=0.3, failure_mix=FailureMix(node_busy=2, dropped=1))
    signatures = [sign(make_message(blockhash_at("stats", slot, 25)), SIGNER) for slot in range(6000)]
    draws = [failure_for(config, s) for s in signatures]
    assert draws == [failure_for(config, s) for s in signatures]
    failed = [d for d in draws if d is not None]
    assert 0.27 < len(failed) / len(draws) < 0.33
    assert 0.45 < failed.count("node_busy") / len(failed) < 0.55
    assert 0.2 < failed.count("blockhash_not_found") / len(failed) < 0.3
    assert 0.2 < failed.count("dropped") / len(failed) < 0.3


def test_failure_rates_zero_and_one_are_never_and_always() -> None:
    signatures = [sign(make_message(blockhash_at("edge", slot, 25)), SIGNER) for slot in range(500)]
    assert all(failure_for(ChainConfig(failure_rate=0.0), s) is None for s in signatures)
    assert all(failure_for(ChainConfig(failure_rate=1.0), s) is not None for s in signatures)


@given(st.integers(0, 5_000), st.integers(0, 5_000), st.binary(min_size=1, max_size=16))
def test_confirm_delays_fall_inside_the_configured_range(a: int, b: int, seed: bytes) -> None:
    lo, hi = min(a, b), max(a, b)
    config = ChainConfig(seed=seed.hex(), confirm_delay_ms=(lo, hi))
    signature = sign(make_message(blockhash_at("d", a, 25)), seed)
    delay = confirm_delay_for(config, signature)
    assert lo <= delay <= hi
    assert delay == confirm_delay_for(config, signature)


# --- latency and configuration --------------------------------------------------------------


async def test_every_rpc_sleeps_a_latency_inside_the_configured_range() -> None:
    chain, time, _ = make_chain(rpc_latency_ms=(20, 80))
    tx = await fresh_tx(chain)
    await chain.submit(tx)
    await chain.signature_status(tx.signature)
    assert len(time.slept) == 3
    assert all(0.020 <= s <= 0.080 for s in time.slept)


async def test_a_zero_latency_chain_never_sleeps() -> None:
    chain, time, _ = make_chain(rpc_latency_ms=(0, 0))
    tx = await fresh_tx(chain)
    await chain.submit(tx)
    assert time.slept == []


@pytest.mark.parametrize(
    "settings",
    [
        {"failure_rate": 1.5},
        {"failure_rate": -0.1},
        {"confirm_delay_ms": (10, 5)},
        {"rpc_latency_ms": (-1, 5)},
        {"blockhash_ttl_slots": 0},
    ],
)
def test_chain_config_refuses_impossible_settings(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ChainConfig(**settings)


def test_a_failure_mix_with_no_weight_is_refused() -> None:
    with pytest.raises(ValueError):
        FailureMix(node_busy=0, blockhash_not_found=0, dropped=0)


# --- malformed transactions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("swap", "reason"),
    [
        ({"amount_in": 0}, "amount_in"),
        ({"min_amount_out": -1}, "min_amount_out"),
        ({"token_out": "SOL"}, "token_in and token_out"),
    ],
)
async def test_a_malformed_swap_is_a_permanent_error(swap: dict[str, object], reason: str) -> None:
    chain, _, store = make_chain()
    with pytest.raises(PermanentChainError, match=reason):
        await chain.submit(await fresh_tx(chain, **swap))
    assert store.values == {}


async def test_a_signature_that_is_not_64_bytes_of_base58_is_a_permanent_error() -> None:
    chain, _, _ = make_chain()
    tx = await fresh_tx(chain)
    for bad in ("not-base58-0OIl", base58.b58encode(b"short").decode()):
        with pytest.raises(PermanentChainError, match="signature"):
            await chain.submit(Transaction(signature=bad, message=tx.message))


async def test_a_message_without_instructions_or_with_bad_compute_budget_is_a_permanent_error() -> None:
    chain, _, _ = make_chain()
    message = make_message(await chain.latest_blockhash())
    variants = [
        Message(**{**_fields(message), "instructions": ()}),
        Message(**{**_fields(message), "compute_unit_limit": 0}),
        Message(**{**_fields(message), "compute_unit_price_micro_lamports": -1}),
        Message(**{**_fields(message), "fee_payer": "tooshort"}),
    ]
    for variant in variants:
        with pytest.raises(PermanentChainError):
            await chain.submit(signed(variant, SIGNER))


def _fields(message: Message) -> dict[str, object]:
    return {name: getattr(message, name) for name in message.__struct_fields__}
