"""Driving a routed order to confirmed or failed, one recorded step at a time.

Never twice: every step is decided from the log (`policy.next_step`), a built
transaction is recorded (with its signature) before it is sent, and a recorded but
unconfirmed transaction is looked up on the chain before it is sent again. The chain
lands a signature at most once, and a transaction is rebuilt only when its blockhash
has expired, i.e. when it can provably never land. Two replicas acting on one order
collide on the log's optimistic concurrency; the loser reloads and follows the winner.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from services.executor import policy
from services.executor.build import BuildParams, Wallet, build, priority_fee_lamports
from shared import events as ev
from shared import metrics
from shared.chain import Blockhash, SimulatedChain, TransientChainError
from shared.chain import Transaction as ChainTransaction
from shared.consumer import Retry
from shared.emit import Emitter
from shared.eventlog import ConcurrencyConflict, History
from shared.orders import Transaction
from shared.resume import Resume

log = logging.getLogger(__name__)

#: A transaction this drive built and signed, with the blockhash it was built on.
Built = tuple[ChainTransaction, Blockhash]


class Executor:
    def __init__(
        self,
        emitter: Emitter,
        chain: SimulatedChain,
        wallet: Wallet,
        params: BuildParams,
        *,
        max_attempts: int = 3,
        backoff_base_ms: int = 250,
        backoff_max_ms: int = 5_000,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        prepare: Callable[[ev.Route], Awaitable[None]] | None = None,
    ):
        self._emit = emitter
        self._chain = chain
        self._wallet = wallet
        self._params = params
        self._max_attempts = max_attempts
        self._backoff = (backoff_base_ms, backoff_max_ms)
        self._sleep = sleep
        self._driving: set[str] = set()
        self._prepare = prepare

    async def handle(self, event: ev.OrderEvent, _msg=None) -> None:
        """Consumer entry: drive the order unless this process is already driving it."""
        if event.order_id in self._driving:
            raise Retry("this process is already driving the order", delay=5.0)
        await self._drive_once(event.order_id, event.seq)

    async def resume(self, nudge: Resume, _msg=None) -> None:
        """Consumer entry for a resume nudge: drive the order from the log.

        An order this process is driving already (waiting out a backoff, waiting for
        landing) needs nothing more: the nudge is done. Driven by another replica, it is
        driven here too, which the log and the chain make harmless.
        """
        if nudge.order_id not in self._driving:
            await self._drive_once(nudge.order_id, nudge.seq)

    async def _drive_once(self, order_id: str, through_seq: int) -> None:
        self._driving.add(order_id)
        try:
            await self.drive(order_id, through_seq)
        finally:
            self._driving.discard(order_id)

    async def drive(self, order_id: str, through_seq: int = 0) -> None:
        """Take the order from what the log holds (at least through `through_seq`) to its end."""
        history = await self._emit.log.load(order_id, through_seq=through_seq)
        if self._prepare is not None and history.state is not None and history.state.route is not None:
            await self._prepare(history.state.route)
        built_here: dict[str, Built] = {}  # by signature
        while True:
            step = policy.next_step(history.state, self._emit.clock.now_ms(), max_attempts=self._max_attempts)
            if isinstance(step, policy.Done):
                return
            try:
                history = await self._act(history, step, built_here)
            except ConcurrencyConflict:
                history = await self._emit.log.load(order_id)

    async def _act(self, history: History, step: policy.Step, built_here: dict[str, Built]) -> History:
        match step:
            case policy.Wait(until_ms=until):
                await self._sleep(max(0, until - self._emit.clock.now_ms()) / 1000)
                return history
            case policy.GiveUp(reason=reason):
                return await self._finish(history, ev.OrderFailed, code="attempts_exhausted", reason=reason)
            case policy.Build(attempt=attempt):
                history, built = await self._build(history, attempt)
                built_here[history.state.transaction.signature] = built
                return history
            case policy.Send(tx=tx):
                return await self._send(history, tx, built_here.get(tx.signature))
            case policy.AwaitLanding(tx=tx):
                return await self._await_landing(history, tx, built_here.get(tx.signature))
        raise AssertionError(f"unhandled step {step}")

    async def _build(self, history: History, attempt: int) -> tuple[History, Built]:
        blockhash = await self._chain.latest_blockhash()
        tx = build(history.state, attempt=attempt, blockhash=blockhash, wallet=self._wallet, params=self._params)
        names = tuple(i.name for i in tx.message.instructions)
        history = await self._emit.append(
            history,
            ev.TransactionBuilt,
            attempt=attempt,
            signature=tx.signature,
            blockhash=blockhash.value,
            blockhash_slot=blockhash.slot,
            last_valid_slot=blockhash.last_valid_slot,
            fee_payer=self._wallet.address,
            compute_unit_limit=tx.message.compute_unit_limit,
            compute_unit_price=tx.message.compute_unit_price_micro_lamports,
            priority_fee_lamports=priority_fee_lamports(tx),
            instructions=names,
            wraps_sol="SyncNative" in names,
            unwraps_sol="CloseAccount" in names and "SyncNative" not in names,
        )
        return history, (tx, blockhash)

    def _rebuild(self, history: History, recorded: Transaction, built_here: Built | None) -> Built:
        """The recorded transaction: as built in this drive, else built again from its recorded event."""
        if built_here is not None:
            return built_here
        built = next(
            s.event for s in reversed(history.events)
            if isinstance(s.event, ev.TransactionBuilt) and s.event.signature == recorded.signature
        )
        blockhash = Blockhash(value=built.blockhash, slot=built.blockhash_slot, last_valid_slot=built.last_valid_slot)
        tx = build(history.state, attempt=built.attempt, blockhash=blockhash, wallet=self._wallet, params=self._params)
        if tx.signature != recorded.signature:
            raise RuntimeError(f"rebuilt transaction differs from the recorded one ({recorded.signature})")
        return tx, blockhash

    async def _send(self, history: History, recorded: Transaction, built_here: Built | None) -> History:
        tx, blockhash = self._rebuild(history, recorded, built_here)
        # Built in an earlier drive, it may have been sent before a crash: the chain, not
        # memory, says so. (If another replica sends it meanwhile, the chain's signature
        # dedupe answers our submit with the same receipt.)
        status = None if built_here is not None else await self._chain.signature_status(tx.signature)
        if status is not None:
            return await self._emit.append(
                history, ev.TransactionSubmitted, attempt=recorded.attempt, signature=tx.signature,
                slot=status.slot or blockhash.slot, already_processed=True,
            )
        if not await self._chain.is_blockhash_valid(blockhash):
            return await self._fail_attempt(history, recorded, "blockhash_expired", "blockhash expired before it was sent")
        try:
            receipt = await self._chain.submit(tx)
        except TransientChainError as exc:
            return await self._fail_attempt(history, recorded, exc.kind, str(exc))
        return await self._emit.append(
            history, ev.TransactionSubmitted, attempt=recorded.attempt, signature=tx.signature,
            slot=receipt.submitted_slot, already_processed=receipt.already_processed,
        )

    async def _await_landing(self, history: History, recorded: Transaction, built_here: Built | None) -> History:
        tx, blockhash = self._rebuild(history, recorded, built_here)
        # One read, then a sleep until the chain says the transaction lands, or until its
        # blockhash expires when it never will: no polling, however slow the chain.
        status = await self._chain.await_status(tx.signature, blockhash)
        if status is None:
            # Not seen and can no longer land: dropped. Safe to build a new one.
            return await self._fail_attempt(
                history, recorded, "dropped", "transaction dropped: not landed before its blockhash expired"
            )
        if status.state == "confirmed":
            metrics.bound(metrics.EXECUTION_ATTEMPTS, "confirmed", "none").inc()
            return await self._finish(
                history, ev.OrderConfirmed, signature=tx.signature, slot=status.slot, amount_out=status.amount_out
            )
        error = status.error or "swap program failed"
        code = "slippage_exceeded" if "Slippage" in error else "chain_error"
        metrics.bound(metrics.EXECUTION_ATTEMPTS, "failed", code).inc()
        return await self._finish(history, ev.OrderFailed, code=code, reason=_failure_reason(code, error))

    async def _fail_attempt(self, history: History, tx: Transaction, kind: str, reason: str) -> History:
        metrics.bound(metrics.EXECUTION_ATTEMPTS, "transient", kind).inc()
        delay = policy.backoff_ms(tx.attempt, base_ms=self._backoff[0], max_ms=self._backoff[1])
        log.info("attempt failed", extra={"orderId": history.state.order_id, "attempt": tx.attempt, "kind": kind})
        return await self._emit.append(
            history, ev.AttemptFailed, attempt=tx.attempt, signature=tx.signature, kind=kind, reason=reason,
            retry_at=self._emit.clock.now_ms() + delay,
        )

    async def _finish(self, history: History, cls: type[ev.Event], **fields) -> History:
        history = await self._emit.append(history, cls, **fields)
        state = history.state
        log.info("order finished", extra={"orderId": state.order_id, "status": state.status,
                                          "amountOut": state.amount_out, "reason": state.failure_reason})
        return history


def _failure_reason(code: str, error: str) -> str:
    if code == "slippage_exceeded":
        return f"slippage exceeded: the market moved past the order's minimum output ({error})"
    return f"transaction failed on chain: {error}"
