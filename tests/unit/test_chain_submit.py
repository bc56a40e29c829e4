"""The simulated chain's submission, landing, settlement and expiry, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from shared.chain import (
    FailureMix,
    InMemoryChainStore,
    PermanentChainError,
    SimulatedChain,
    Transaction,
    TransientChainError,
    blockhash_at,
    sign,
    signed,
)
from tests.unit.chain_kit import SIGNER, SLOT_MS, FakeTime, fresh_tx, make_chain, make_message


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


# --- waiting for the final status -------------------------------------------------------------


class CountingStore(InMemoryChainStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key: str) -> bytes | None:
        self.reads += 1
        return await super().get(key)


async def test_its_sender_awaits_a_landing_transaction_without_reading_it_back_and_sleeps_until_it_lands() -> None:
    store = CountingStore()
    chain, time, _ = make_chain(store=store, confirm_delay_ms=(2500, 2500))
    tx = await fresh_tx(chain)
    receipt = await chain.submit(tx)
    status = await chain.await_status(tx.signature, tx.message.blockhash)
    assert status is not None and status.state == "confirmed"
    assert status == await chain.signature_status(tx.signature)
    assert time.ms == receipt.submitted_ms + 2500
    assert store.reads == 0, "the sender holds the record it stored; a stored record never changes"


async def test_awaiting_a_transaction_that_already_landed_returns_at_once() -> None:
    chain, time, _ = make_chain()
    tx = await fresh_tx(chain, pool_id="broken-pool")
    await chain.submit(tx)
    time.advance(5000)
    status = await chain.await_status(tx.signature, tx.message.blockhash)
    assert status is not None and status.state == "failed" and status.error == "PoolPaused"
    assert time.slept == []


async def test_a_dropped_transaction_is_declared_dead_only_once_its_blockhash_expired() -> None:
    chain, _, _ = make_chain(
        blockhash_ttl_slots=5, failure_rate=1.0, failure_mix=FailureMix(node_busy=0, blockhash_not_found=0)
    )
    tx = await fresh_tx(chain)
    await chain.submit(tx)
    assert await chain.await_status(tx.signature, tx.message.blockhash) is None
    assert await chain.current_slot() == tx.message.blockhash.last_valid_slot + 1
    assert not await chain.is_blockhash_valid(tx.message.blockhash)


class SubmitsOnFirstSleep(FakeTime):
    """Another sender submits ``tx`` while the waiter first sleeps, after its read found nothing."""

    chain: SimulatedChain
    tx: Transaction | None = None

    async def sleep(self, seconds: float) -> None:
        if self.tx is not None:
            tx, self.tx = self.tx, None
            await self.chain.submit(tx)
        await super().sleep(seconds)


async def test_a_signature_another_sender_submits_while_one_waits_is_found_after_expiry() -> None:
    time = SubmitsOnFirstSleep()
    chain, _, store = make_chain(time=time, blockhash_ttl_slots=5, confirm_delay_ms=(0, 0))
    tx = await fresh_tx(chain)
    time.chain, time.tx = chain, tx
    status = await chain.await_status(tx.signature, tx.message.blockhash)
    assert time.tx is None and len(store.values) == 1
    assert status is not None and status.state == "confirmed"


async def test_a_signature_never_sent_is_dead_once_its_blockhash_expired() -> None:
    chain, _, _ = make_chain(blockhash_ttl_slots=5)
    tx = await fresh_tx(chain)
    assert await chain.await_status(tx.signature, tx.message.blockhash) is None
    assert await chain.current_slot() > tx.message.blockhash.last_valid_slot


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


async def test_another_replica_awaiting_the_transaction_reads_it_once() -> None:
    store = CountingStore()
    chain, time, _ = make_chain(store=store, confirm_delay_ms=(2500, 2500))
    replica, _, _ = make_chain(time=time, store=store, confirm_delay_ms=(2500, 2500))
    tx = await fresh_tx(chain)
    await chain.submit(tx)
    status = await replica.await_status(tx.signature, tx.message.blockhash)
    assert status is not None and status.state == "confirmed"
    assert store.reads == 1
