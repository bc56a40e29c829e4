"""Building the swap transaction for an order: pure and deterministic.

The same order, attempt and blockhash always give the same message and so the same
signature; after a crash the executor rebuilds the transaction it recorded and gets
the exact bytes it may already have sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import base58

from shared.chain import Blockhash, Instruction, Message, SwapIntent, Transaction, signed
from shared.market.tokens import get_token
from shared.orders import OrderState

COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"
SYSTEM = "11111111111111111111111111111111"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
ASSOCIATED_TOKEN = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
MEMO = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
PROGRAMS = {
    "raydium-cpmm": ("CPMMoo8L3F4NbTegBCKVNunggL7H1ZpdTHKxQB5qKP1C", "swap_base_input"),
    "meteora-dlmm": ("LBUZKhRxPF3XUpBCjp4YzTKgLccjZhTSDM9YuVaPwxo", "swap"),
}


@dataclass(frozen=True)
class Wallet:
    seed: bytes
    address: str

    @classmethod
    def from_seed(cls, seed: str) -> "Wallet":
        secret = hashlib.sha256(seed.encode()).digest()
        return cls(seed=secret, address=base58.b58encode(hashlib.sha256(b"pub" + secret).digest()).decode())


@dataclass(frozen=True)
class BuildParams:
    compute_unit_limit: int
    compute_unit_price: int


def priority_price(base_price: int, attempt: int) -> int:
    """Raise the priority fee by half on every retry, as a landing-hungry bot does."""
    return base_price * 3 ** (attempt - 1) // 2 ** (attempt - 1)


def build(state: OrderState, *, attempt: int, blockhash: Blockhash, wallet: Wallet, params: BuildParams) -> Transaction:
    route = state.route
    assert route is not None, "an order is built only after it is routed"
    spec = state.spec
    wraps = get_token(spec.token_in).native
    unwraps = get_token(spec.token_out).native
    price = priority_price(params.compute_unit_price, attempt)
    wsol_account = _address(wallet.address, "wsol")
    instructions = [
        Instruction(program_id=COMPUTE_BUDGET, name="SetComputeUnitLimit", args={"units": params.compute_unit_limit}),
        Instruction(program_id=COMPUTE_BUDGET, name="SetComputeUnitPrice", args={"microLamports": price}),
    ]
    if wraps or unwraps:
        instructions.append(
            Instruction(program_id=ASSOCIATED_TOKEN, name="CreateIdempotent", args={"account": wsol_account})
        )
    if wraps:
        instructions += [
            Instruction(program_id=SYSTEM, name="Transfer", args={"to": wsol_account, "lamports": spec.amount_in}),
            Instruction(program_id=TOKEN, name="SyncNative", args={"account": wsol_account}),
        ]
    program, name = PROGRAMS[route.venue]
    instructions.append(
        Instruction(
            program_id=program,
            name=name,
            args={"pool": route.pool_id, "amountIn": spec.amount_in, "minimumAmountOut": route.min_out},
        )
    )
    if wraps or unwraps:
        instructions.append(Instruction(program_id=TOKEN, name="CloseAccount", args={"account": wsol_account}))
    # Two orders with the same swap built in the same slot would otherwise be byte-identical,
    # and the chain would treat the second as a duplicate of the first.
    instructions.append(Instruction(program_id=MEMO, name="Memo", args={"memo": f"order:{state.order_id}:{attempt}"}))
    message = Message(
        blockhash=blockhash,
        fee_payer=wallet.address,
        compute_unit_limit=params.compute_unit_limit,
        compute_unit_price_micro_lamports=price,
        instructions=tuple(instructions),
        swap=SwapIntent(
            pool_id=route.pool_id,
            token_in=spec.token_in,
            token_out=spec.token_out,
            amount_in=spec.amount_in,
            min_amount_out=route.min_out,
        ),
    )
    return signed(message, wallet.seed)


def priority_fee_lamports(tx: Transaction) -> int:
    m = tx.message
    return m.compute_unit_limit * m.compute_unit_price_micro_lamports // 1_000_000


def _address(owner: str, purpose: str) -> str:
    return base58.b58encode(hashlib.sha256(f"{owner}:{purpose}".encode()).digest()).decode()
