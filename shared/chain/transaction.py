"""Transactions: a message of instructions plus a signature derived from it.

The signature is a pure function of the message and the signer, as on Solana: the same message
always has the same signature, and any change (a fresh blockhash in particular) gives a new one.
That is what makes "the same signature lands at most once" a guard against double execution.
"""

from __future__ import annotations

import functools

import hashlib

import base58
import msgspec

from shared.chain.blockhash import Blockhash
from shared.chain.errors import PermanentChainError

MAX_COMPUTE_UNIT_LIMIT = 1_400_000
MEMO_PROGRAM = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"  # Solana's Memo program: text the sender attaches
_DOMAIN = b"sim-chain/message/v1\x00"


class Instruction(msgspec.Struct, frozen=True, kw_only=True):
    """One program invocation; ``program_id`` is base58 of 32 bytes, as a real program address."""

    program_id: str
    name: str
    args: dict[str, str | int] = {}


class SwapLeg(msgspec.Struct, frozen=True, kw_only=True):
    """One swap of a path: sell ``token_in`` into ``pool_id`` for ``token_out``."""

    pool_id: str
    token_in: str
    token_out: str


class SwapPath(msgspec.Struct, frozen=True, kw_only=True):
    """A share of the input swapped through ``legs`` in a row.

    The first leg sells ``amount_in``; every later leg sells all that the leg before
    it received, as an aggregator's route does.
    """

    amount_in: int
    legs: tuple[SwapLeg, ...]


class SwapIntent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the swap instructions ask the pool programs to do, in base units.

    Without ``paths`` it is one swap of ``amount_in`` through ``pool_id``. With
    ``paths`` (a split or multi-hop route) ``pool_id`` only describes the route: the
    paths' ``amount_in`` add up to ``amount_in``, each path swaps leg by leg, and
    ``min_amount_out`` bounds the total the paths deliver. Empty ``paths`` are left
    out of the encoding, so a single-pool message signs exactly as it always did.
    """

    pool_id: str
    token_in: str
    token_out: str
    amount_in: int
    min_amount_out: int
    paths: tuple[SwapPath, ...] = ()


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a signature covers."""

    blockhash: Blockhash
    fee_payer: str  # base58 of 32 bytes
    compute_unit_limit: int
    compute_unit_price_micro_lamports: int
    instructions: tuple[Instruction, ...]
    swap: SwapIntent


class Transaction(msgspec.Struct, frozen=True, kw_only=True):
    """A signed message; ``signature`` (base58 of 64 bytes) identifies it on the chain."""

    signature: str
    message: Message


def memo_of(message: Message) -> str | None:
    """The text of the message's first Memo instruction, or None when it has none."""
    for ix in message.instructions:
        if ix.program_id == MEMO_PROGRAM and isinstance(ix.args.get("memo"), str):
            return ix.args["memo"]  # type: ignore[return-value]
    return None


def message_bytes(message: Message) -> bytes:
    """The canonical encoding of a message: field order fixed, dict keys sorted."""
    return _DOMAIN + msgspec.json.encode(message, order="deterministic")


def sign(message: Message, signer_seed: bytes) -> str:
    """The signature of ``message`` by the signer holding ``signer_seed``: base58(sha512(...))."""
    return base58.b58encode(hashlib.sha512(signer_seed + message_bytes(message)).digest()).decode("ascii")


def signed(message: Message, signer_seed: bytes) -> Transaction:
    """``message`` with its signature attached."""
    return Transaction(signature=sign(message, signer_seed), message=message)


def check_well_formed(tx: Transaction) -> None:
    """Raise PermanentChainError naming the first defect that no retry could fix."""
    _require_base58(tx.signature, 64, "signature")
    msg = tx.message
    _require_base58(msg.fee_payer, 32, "fee_payer")
    _require_base58(msg.blockhash.value, 32, "blockhash")
    if not 0 < msg.compute_unit_limit <= MAX_COMPUTE_UNIT_LIMIT:
        raise PermanentChainError(f"compute_unit_limit {msg.compute_unit_limit} outside 1..{MAX_COMPUTE_UNIT_LIMIT}")
    if msg.compute_unit_price_micro_lamports < 0:
        raise PermanentChainError("compute_unit_price_micro_lamports is negative")
    if not msg.instructions:
        raise PermanentChainError("transaction has no instructions")
    for ix in msg.instructions:
        _require_base58(ix.program_id, 32, f"program id of instruction {ix.name!r}")
    swap = msg.swap
    if swap.amount_in <= 0:
        raise PermanentChainError(f"swap amount_in must be positive, got {swap.amount_in}")
    if swap.min_amount_out < 0:
        raise PermanentChainError(f"swap min_amount_out is negative: {swap.min_amount_out}")
    if swap.token_in == swap.token_out:
        raise PermanentChainError(f"swap token_in and token_out are both {swap.token_in}")
    if swap.paths:
        _check_paths(swap)


def _check_paths(swap: SwapIntent) -> None:
    total = sum(path.amount_in for path in swap.paths)
    if total != swap.amount_in:
        raise PermanentChainError(f"swap paths sell {total} in all, not the swap's amount_in {swap.amount_in}")
    used: set[str] = set()
    for number, path in enumerate(swap.paths, start=1):
        if path.amount_in <= 0:
            raise PermanentChainError(f"path {number} must sell a positive amount, got {path.amount_in}")
        if not path.legs:
            raise PermanentChainError(f"path {number} has no legs")
        holding = swap.token_in
        for leg in path.legs:
            if leg.token_in != holding:
                raise PermanentChainError(f"path {number} sells {leg.token_in} into {leg.pool_id} but holds {holding}")
            if leg.pool_id in used:
                # Pools are settled from their state at the landing slot, so a second swap
                # through one pool in the same transaction would be priced as if it were first.
                raise PermanentChainError(f"pool {leg.pool_id} is swapped through twice in one transaction")
            used.add(leg.pool_id)
            holding = leg.token_out
        if holding != swap.token_out:
            raise PermanentChainError(f"path {number} ends in {holding}, not {swap.token_out}")


def _require_base58(value: str, length: int, what: str) -> None:
    try:
        decoded = _decoded_length(value)
    except ValueError:
        raise PermanentChainError(f"{what} is not base58: {value!r}") from None
    if decoded != length:
        raise PermanentChainError(f"{what} must encode {length} bytes, got {decoded}")


@functools.lru_cache(maxsize=4096)  # the same wallets, programs and blockhashes come again and again
def _decoded_length(value: str) -> int:
    return len(base58.b58decode(value))
