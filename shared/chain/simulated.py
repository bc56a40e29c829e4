"""The simulated chain: submission, signature dedupe, blockhash expiry and settlement."""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from typing import Awaitable, Callable

import msgspec

from shared.chain.blockhash import Blockhash, blockhash_at, blockhash_value
from shared.chain.clock import SlotClock
from shared.chain.config import ChainConfig
from shared.chain.draws import confirm_delay_for, draw_key, failure_for
from shared.chain.errors import PermanentChainError, TransientChainError
from shared.chain.records import Settle, SubmitReceipt, TxRecord, TxStatus
from shared.chain.store import ChainStore
from shared.chain.transaction import Transaction, check_well_formed

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(TxRecord).decode


class SimulatedChain:
    """A Solana-like chain whose state lives in a shared ChainStore.

    Faithful where double execution is at stake: a signature lands at most once, a transaction
    whose blockhash expired never lands, and a dropped transaction is simply never seen, so the
    only proof that it is dead is the expiry of its blockhash. Everything a reader sees is a
    function of the stored record and the clock, so every replica sees the same chain.
    """

    def __init__(
        self,
        store: ChainStore,
        clock: SlotClock,
        config: ChainConfig,
        settle: Settle,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        #: Records this process stored or read: a record never changes once stored, so a
        #: transaction's sender waits for it without reading it back (bounded, oldest out).
        self._known: OrderedDict[str, TxRecord] = OrderedDict()
        self._clock = clock
        self._config = config
        self._settle = settle
        self._sleep = sleep
        # RPC latency only shapes timing, never outcomes, so a plain seeded stream suffices.
        self._rng = rng if rng is not None else random.Random(f"{config.seed}/rpc-latency")

    @property
    def config(self) -> ChainConfig:
        return self._config

    async def current_slot(self) -> int:
        """The slot the chain is at now."""
        await self._rpc_latency()
        return self._clock.current_slot()

    async def latest_blockhash(self) -> Blockhash:
        """The blockhash of the current slot, valid for ``blockhash_ttl_slots`` slots."""
        await self._rpc_latency()
        return blockhash_at(self._config.seed, self._clock.current_slot(), self._config.blockhash_ttl_slots)

    async def is_blockhash_valid(self, blockhash: Blockhash) -> bool:
        """Whether a transaction using ``blockhash`` could still land."""
        await self._rpc_latency()
        slot = self._clock.current_slot()
        return (
            blockhash.value == blockhash_value(self._config.seed, blockhash.slot)
            and blockhash.slot <= slot <= self._last_valid_slot(blockhash)
        )

    async def submit(self, tx: Transaction) -> SubmitReceipt:
        """Accept ``tx`` for landing, or return the receipt of its earlier acceptance.

        Raises PermanentChainError for a malformed transaction and TransientChainError when the
        blockhash expired, is not yet known, or the node failed; in those cases nothing is recorded.
        As on Solana, expiry is checked first: resubmitting a transaction whose blockhash expired
        raises ``blockhash_expired`` even if it landed, so ask ``signature_status`` to learn its fate.
        """
        await self._rpc_latency()
        check_well_formed(tx)
        blockhash = tx.message.blockhash
        if blockhash.value != blockhash_value(self._config.seed, blockhash.slot):
            raise PermanentChainError(f"blockhash {blockhash.value} was never produced at slot {blockhash.slot}")
        now_ms = self._clock.now_ms()
        slot = self._clock.slot_at(now_ms)
        last_valid_slot = self._last_valid_slot(blockhash)
        if slot > last_valid_slot:
            raise TransientChainError(
                "blockhash_expired", f"blockhash valid through slot {last_valid_slot}, chain is at slot {slot}"
            )
        if blockhash.slot > slot:
            raise TransientChainError("blockhash_not_found", f"blockhash of slot {blockhash.slot} is ahead of this node")
        key = draw_key(tx)
        failure = failure_for(self._config, key)
        if failure == "node_busy":
            raise TransientChainError("node_busy", "node is busy, transaction not forwarded")
        if failure == "blockhash_not_found":
            raise TransientChainError("blockhash_not_found", f"node does not know blockhash {blockhash.value}")
        lands_at_ms = now_ms + confirm_delay_for(self._config, key)
        landing_slot = self._clock.slot_at(lands_at_ms)
        record = TxRecord(
            transaction=tx,
            submitted_ms=now_ms,
            submitted_slot=slot,
            last_valid_slot=last_valid_slot,
            lands_at_ms=lands_at_ms,
            landing_slot=landing_slot,
            # Landing after the blockhash expired is impossible, so such a transaction is lost.
            dropped=failure == "dropped" or landing_slot > last_valid_slot,
        )
        if await self._store.create(_key(tx.signature), _encode(record)):
            self._remember(record)
            return _receipt(record, already_processed=False)
        existing = await self._record(tx.signature)
        if existing is None:
            raise RuntimeError(f"chain store refused {tx.signature} but holds no record of it")
        return _receipt(existing, already_processed=True)

    async def signature_status(self, signature: str) -> TxStatus | None:
        """The status of ``signature``: None when the chain never saw it or it was dropped."""
        await self._rpc_latency()
        record = await self._record(signature)
        if record is None or record.dropped:
            return None
        return self._status(record, self._clock.now_ms())

    async def await_status(self, signature: str, blockhash: Blockhash) -> TxStatus | None:
        """Wait for the final status of ``signature``, sent with ``blockhash``, and return it.

        Like Solana's ``signatureSubscribe``: the record is read once and the call sleeps until
        the transaction lands, then returns it confirmed or failed, never pending. None means it
        can never land (dropped, or never seen), which is known only once ``blockhash`` has
        expired: the call sleeps until then and reads once more, because another sender may have
        submitted the same signature meanwhile (after expiry nobody can). So a confirmation costs
        two reads at most, however long it takes.
        """
        await self._rpc_latency()
        record = await self._record(signature)
        if record is None or record.dropped:
            await self._sleep_until(self._clock.ms_of(self._last_valid_slot(blockhash) + 1))
            if record is None:
                record = await self._record(signature)
            if record is None or record.dropped:
                return None
        await self._sleep_until(record.lands_at_ms)
        return self._status(record, self._clock.now_ms())

    def _status(self, record: TxRecord, now_ms: int) -> TxStatus:
        signature = record.transaction.signature
        if now_ms < record.lands_at_ms:
            return TxStatus(signature=signature, state="pending")
        confirmations = self._clock.slot_at(now_ms) - record.landing_slot
        swap = record.transaction.message.swap
        outcome = self._settle(swap, record.landing_slot)
        if not outcome.ok:
            error = outcome.error or "swap program failed"
        elif outcome.amount_out < swap.min_amount_out:
            # The swap program enforces the minimum itself, as on-chain AMMs do.
            error = f"ExceededSlippage: amount_out {outcome.amount_out} < min_amount_out {swap.min_amount_out}"
        else:
            return TxStatus(
                signature=signature,
                state="confirmed",
                slot=record.landing_slot,
                confirmations=confirmations,
                amount_out=outcome.amount_out,
            )
        return TxStatus(
            signature=signature, state="failed", slot=record.landing_slot, confirmations=confirmations, error=error
        )

    async def _sleep_until(self, ms: int) -> None:
        # A timer may wake a little early against the wall clock; sleep the rest.
        while (left := ms - self._clock.now_ms()) > 0:
            await self._sleep(left / 1000)

    def _last_valid_slot(self, blockhash: Blockhash) -> int:
        # Computed from the chain's own window, never trusted from the client's copy.
        return blockhash.slot + self._config.blockhash_ttl_slots

    async def _record(self, signature: str) -> TxRecord | None:
        known = self._known.get(signature)
        if known is not None:
            return known
        raw = await self._store.get(_key(signature))
        if raw is None:
            return None
        record = _decode(raw)
        self._remember(record)
        return record

    def _remember(self, record: TxRecord) -> None:
        self._known[record.transaction.signature] = record
        if len(self._known) > _KNOWN_RECORDS:
            self._known.popitem(last=False)

    async def _rpc_latency(self) -> None:
        lo, hi = self._config.rpc_latency_ms
        if hi > 0:
            await self._sleep(self._rng.randint(lo, hi) / 1000)


#: Records kept in memory per process: well over the transactions in flight at once.
_KNOWN_RECORDS = 20_000


def _key(signature: str) -> str:
    return f"tx.{signature}"


def _receipt(record: TxRecord, *, already_processed: bool) -> SubmitReceipt:
    return SubmitReceipt(
        signature=record.transaction.signature,
        submitted_ms=record.submitted_ms,
        submitted_slot=record.submitted_slot,
        last_valid_slot=record.last_valid_slot,
        already_processed=already_processed,
    )
