"""The simulated chain's slots, blockhashes and signatures."""

from __future__ import annotations

import base58
import pytest

from shared.chain import Blockhash, Instruction, Message, SlotClock, blockhash_at, sign
from tests.unit.chain_kit import GENESIS_MS, SIGNER, SLOT_MS, SWAP_PROGRAM, make_chain, make_message


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
