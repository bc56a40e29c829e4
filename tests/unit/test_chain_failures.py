"""The simulated chain's transient failures, latency, configuration and malformed input."""

from __future__ import annotations

import base58
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.chain import (
    MEMO_PROGRAM,
    ChainConfig,
    FailureMix,
    Instruction,
    Message,
    PermanentChainError,
    Transaction,
    TransientChainError,
    blockhash_at,
    confirm_delay_for,
    draw_key,
    failure_for,
    sign,
    signed,
)
from tests.unit.chain_kit import SIGNER, SLOT_MS, fresh_tx, make_chain, make_message


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


async def test_without_a_memo_a_retry_with_a_fresh_blockhash_draws_its_failure_independently() -> None:
    chain, time, _ = make_chain(failure_rate=0.5)
    outcomes = set()
    for _ in range(40):
        tx = await fresh_tx(chain)
        outcomes.add(failure_for(chain.config, tx.signature))
        time.advance(SLOT_MS)
    assert None in outcomes and len(outcomes) > 1


def with_memo(tx: Transaction, memo: str) -> Transaction:
    memo_ix = Instruction(program_id=MEMO_PROGRAM, name="Memo", args={"memo": memo})
    return signed(msgspec.structs.replace(tx.message, instructions=(*tx.message.instructions, memo_ix)), SIGNER)


async def test_an_attempt_named_by_its_memo_suffers_the_same_failure_whatever_blockhash_it_names() -> None:
    chain, time, _ = make_chain(failure_rate=0.5)
    memo = next(f"order:o{i}:1" for i in range(100) if failure_for(chain.config, f"order:o{i}:1") == "node_busy")
    signatures = set()
    for _ in range(20):
        tx = with_memo(await fresh_tx(chain), memo)
        signatures.add(tx.signature)
        assert draw_key(tx) == memo
        with pytest.raises(TransientChainError) as refused:
            await chain.submit(tx)
        assert refused.value.kind == "node_busy"
        time.advance(SLOT_MS)
    assert len(signatures) == 20


async def test_each_attempt_of_an_order_draws_afresh_and_lands_when_its_draw_spares_it() -> None:
    chain, _, store = make_chain(failure_rate=0.5)
    tx = await fresh_tx(chain)
    draws = {n: failure_for(chain.config, draw_key(with_memo(tx, f"order:o1:{n}"))) for n in range(1, 41)}
    assert None in draws.values() and len(set(draws.values())) > 1
    spared = next(attempt for attempt, kind in draws.items() if kind is None)
    receipt = await chain.submit(with_memo(tx, f"order:o1:{spared}"))
    assert not receipt.already_processed and len(store.values) == 1


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
