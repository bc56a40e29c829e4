"""Signature dedupe, restart survival, drops and expiry on a real JetStream KV bucket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import base58
import nats
import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig

from shared.chain import (
    ChainConfig,
    FailureMix,
    Instruction,
    JetStreamChainStore,
    Message,
    SettleOutcome,
    SimulatedChain,
    SlotClock,
    SwapIntent,
    Transaction,
    TransientChainError,
    signed,
)
from shared.chain.jetstream_store import ensure_bucket
from shared.setup import SetupMissing

SLOT_MS = 400
GENESIS_MS = 1_700_000_000_000
SIGNER = b"integration-signer"


class FakeTime:
    def __init__(self) -> None:
        self.ms = GENESIS_MS + 500 * SLOT_MS

    def now_ms(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)


def settle(swap: SwapIntent, landing_slot: int) -> SettleOutcome:
    return SettleOutcome(ok=True, amount_out=swap.amount_in * 3 + landing_slot)


def chain_on(store: JetStreamChainStore, time: FakeTime, **config: object) -> SimulatedChain:
    settings = {"seed": "kv", "confirm_delay_ms": (800, 800), "rpc_latency_ms": (0, 0), **config}
    return SimulatedChain(store, SlotClock(GENESIS_MS, SLOT_MS, time.now_ms), ChainConfig(**settings), settle, time.sleep)


async def swap_tx(chain: SimulatedChain) -> Transaction:
    message = Message(
        blockhash=await chain.latest_blockhash(),
        fee_payer=base58.b58encode(bytes(32)).decode(),
        compute_unit_limit=150_000,
        compute_unit_price_micro_lamports=1_000,
        instructions=(Instruction(program_id="675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8", name="swap"),),
        swap=SwapIntent(pool_id="p1", token_in="SOL", token_out="USDC", amount_in=5_000, min_amount_out=1),
    )
    return signed(message, SIGNER)


@pytest.fixture
async def connections(nats_url: str) -> AsyncIterator[list[Client]]:
    """Two independent connections, standing for two executor replicas."""
    clients = [await nats.connect(nats_url), await nats.connect(nats_url)]
    yield clients
    for client in clients:
        await client.close()


@pytest.fixture
async def bucket(namespace: str, connections: list[Client]) -> str:
    """A bucket made by the set-up step's function, as `tools.setup` makes the chain's."""
    name = f"chain_{namespace}"
    await ensure_bucket(connections[0].jetstream(), name)
    return name


@pytest.fixture
def new_bucket(namespace: str) -> str:
    return f"fresh_{namespace}"


async def stored_messages(client: Client, bucket: str) -> int:
    info = await client.jetstream().stream_info(f"KV_{bucket}")
    return info.state.messages


async def test_concurrent_submits_from_two_replicas_record_one_transaction_and_share_its_receipt(
    connections: list[Client], bucket: str
) -> None:
    time = FakeTime()
    replicas = [chain_on(await JetStreamChainStore.open(c.jetstream(), bucket), time) for c in connections]
    tx = await swap_tx(replicas[0])
    receipts = await asyncio.gather(*(replicas[i % 2].submit(tx) for i in range(8)))
    assert [r.already_processed for r in receipts].count(False) == 1
    assert len({(r.signature, r.submitted_ms, r.submitted_slot, r.last_valid_slot) for r in receipts}) == 1
    assert await stored_messages(connections[0], bucket) == 1


async def test_a_new_store_instance_after_a_restart_sees_the_transaction_and_its_outcome(
    connections: list[Client], nats_url: str, bucket: str
) -> None:
    time = FakeTime()
    before = chain_on(await JetStreamChainStore.open(connections[0].jetstream(), bucket), time)
    tx = await swap_tx(before)
    receipt = await before.submit(tx)
    time.ms += 1_000

    restarted = await nats.connect(nats_url)
    try:
        after = chain_on(await JetStreamChainStore.open(restarted.jetstream(), bucket), time)
        status = await after.signature_status(tx.signature)
        again = await after.submit(tx)
    finally:
        await restarted.close()
    assert status is not None and status.state == "confirmed"
    assert status.slot == receipt.submitted_slot + 2  # 800 ms after a slot boundary
    assert status.amount_out == 15_000 + status.slot
    assert again.already_processed and again.submitted_ms == receipt.submitted_ms
    assert await stored_messages(connections[0], bucket) == 1


async def test_a_dropped_transaction_is_never_reported_yet_its_signature_cannot_land_later(
    connections: list[Client], bucket: str
) -> None:
    time = FakeTime()
    drops = FailureMix(node_busy=0, blockhash_not_found=0, dropped=1)
    chain = chain_on(
        await JetStreamChainStore.open(connections[0].jetstream(), bucket),
        time,
        failure_rate=1.0,
        failure_mix=drops,
        blockhash_ttl_slots=5,
    )
    tx = await swap_tx(chain)
    receipt = await chain.submit(tx)
    assert not receipt.already_processed
    for _ in range(8):
        time.ms += SLOT_MS
        assert await chain.signature_status(tx.signature) is None
    assert not await chain.is_blockhash_valid(tx.message.blockhash)

    # A replica without failures must not resurrect it: the signature is taken, and expired.
    healthy = chain_on(
        await JetStreamChainStore.open(connections[1].jetstream(), bucket), time, blockhash_ttl_slots=5
    )
    with pytest.raises(TransientChainError) as refused:
        await healthy.submit(tx)
    assert refused.value.kind == "blockhash_expired"
    assert await healthy.signature_status(tx.signature) is None


async def test_a_dropped_transaction_resubmitted_before_expiry_is_already_processed_not_landed(
    connections: list[Client], bucket: str
) -> None:
    time = FakeTime()
    drops = FailureMix(node_busy=0, blockhash_not_found=0, dropped=1)
    store = await JetStreamChainStore.open(connections[0].jetstream(), bucket)
    tx = await swap_tx(chain_on(store, time))
    await chain_on(store, time, failure_rate=1.0, failure_mix=drops).submit(tx)
    healthy = chain_on(await JetStreamChainStore.open(connections[1].jetstream(), bucket), time)
    assert (await healthy.submit(tx)).already_processed
    time.ms += 2_000
    assert await healthy.signature_status(tx.signature) is None


async def test_a_transaction_with_an_expired_blockhash_is_refused_and_not_recorded(
    connections: list[Client], bucket: str
) -> None:
    time = FakeTime()
    chain = chain_on(await JetStreamChainStore.open(connections[0].jetstream(), bucket), time, blockhash_ttl_slots=3)
    tx = await swap_tx(chain)
    time.ms += 4 * SLOT_MS
    with pytest.raises(TransientChainError) as refused:
        await chain.submit(tx)
    assert refused.value.kind == "blockhash_expired"
    assert await chain.signature_status(tx.signature) is None
    assert await stored_messages(connections[0], bucket) == 0


async def test_setting_up_the_bucket_is_idempotent_and_accepts_a_bucket_made_with_other_limits(
    connections: list[Client], new_bucket: str
) -> None:
    js = connections[0].jetstream()
    await js.create_key_value(KeyValueConfig(bucket=new_bucket, history=1, ttl=60))
    await ensure_bucket(js, new_bucket)
    first, second = await asyncio.gather(
        JetStreamChainStore.open(js, new_bucket), JetStreamChainStore.open(connections[1].jetstream(), new_bucket)
    )
    assert await first.create("tx.a", b"1")
    assert not await second.create("tx.a", b"2")
    assert await second.get("tx.a") == b"1"
    assert await first.get("tx.missing") is None


async def test_opening_a_bucket_the_set_up_step_has_not_made_names_that_step(
    connections: list[Client], new_bucket: str
) -> None:
    with pytest.raises(SetupMissing, match="tools.setup"):
        await JetStreamChainStore.open(connections[0].jetstream(), new_bucket)


async def test_concurrent_set_ups_of_a_new_bucket_both_succeed(connections: list[Client], new_bucket: str) -> None:
    await asyncio.gather(*(ensure_bucket(c.jetstream(), new_bucket) for c in connections))
    stores = await asyncio.gather(*(JetStreamChainStore.open(c.jetstream(), new_bucket) for c in connections))
    assert [await s.create("tx.b", b"x") for s in stores].count(True) == 1
