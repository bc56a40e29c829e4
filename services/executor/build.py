"""Building the swap transaction for an order: pure and deterministic.

The same order, attempt and blockhash always give the same message and so the same
signature; after a crash the executor rebuilds the transaction it recorded and gets
the exact bytes it may already have sent.

A route through one pool is one swap instruction, as it always was. A split or
multi-hop route is one swap instruction per leg and carries its paths in the
`SwapIntent`, so the chain settles them leg by leg.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import base58

from shared import events as ev
from shared.chain import MEMO_PROGRAM, Blockhash, Instruction, Message, SwapIntent, Transaction, signed
from shared.chain.transaction import SwapLeg, SwapPath
from shared.market.tokens import get_token
from shared.orders import OrderState

COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"
SYSTEM = "11111111111111111111111111111111"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
ASSOCIATED_TOKEN = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
ASSERTION = "L1TEVtgA75k273wWz1s6XMmDhQY5i3MwcvKb4VbZzfK"  # Lighthouse: fails the transaction if a check fails
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
    single = _single_pool(route)
    # What the order receives lands in the wSOL account when it buys SOL, else in its token account.
    receiving = wsol_account if unwraps else _address(wallet.address, f"ata:{spec.token_out}")
    instructions += _swap_instructions(route, single, spec.amount_in, receiving)
    if wraps or unwraps:
        instructions.append(Instruction(program_id=TOKEN, name="CloseAccount", args={"account": wsol_account}))
    # Two orders with the same swap built in the same slot would otherwise be byte-identical,
    # and the chain would treat the second as a duplicate of the first.
    instructions.append(Instruction(program_id=MEMO_PROGRAM, name="Memo", args={"memo": memo(state.order_id, attempt)}))
    message = Message(
        blockhash=blockhash,
        fee_payer=wallet.address,
        compute_unit_limit=params.compute_unit_limit,
        compute_unit_price_micro_lamports=price,
        instructions=tuple(instructions),
        swap=_swap_intent(route, single, spec),
    )
    return signed(message, wallet.seed)


def memo(order_id: str, attempt: int) -> str:
    """The memo naming one attempt of an order (the simulated chain keys its draws on it)."""
    return f"order:{order_id}:{attempt}"


def _single_pool(route: ev.Route) -> tuple[str, str] | None:
    """``(venue, pool_id)`` when the route swaps through one pool only, else None."""
    if not route.paths:
        return route.venue, route.pool_id
    if len(route.paths) == 1 and len(route.paths[0].legs) == 1:
        leg = route.paths[0].legs[0]
        return leg.venue, leg.pool_id
    return None


def _swap_intent(route: ev.Route, single: tuple[str, str] | None, spec: ev.OrderSpec) -> SwapIntent:
    paths = ()
    if single is None:
        paths = tuple(
            SwapPath(
                amount_in=path.amount_in,
                legs=tuple(SwapLeg(pool_id=leg.pool_id, token_in=leg.token_in, token_out=leg.token_out)
                           for leg in path.legs),
            )
            for path in route.paths
        )
    return SwapIntent(
        pool_id=route.pool_id if single is None else single[1],
        token_in=spec.token_in,
        token_out=spec.token_out,
        amount_in=spec.amount_in,
        min_amount_out=route.min_out,
        paths=paths,
    )


def _swap_instructions(
    route: ev.Route, single: tuple[str, str] | None, amount_in: int, receiving: str
) -> list[Instruction]:
    """One swap instruction per leg, with the order's floor checked once on what it receives.

    A single path carries the floor on its last leg; earlier legs accept any output
    (their output is only an input to the next leg). The paths of a split each take
    what they get and one assertion after them checks the total, as aggregators do.
    """
    if single is not None:
        venue, pool_id = single
        program, name = PROGRAMS[venue]
        args = {"pool": pool_id, "amountIn": amount_in, "minimumAmountOut": route.min_out}
        return [Instruction(program_id=program, name=name, args=args)]
    split = len(route.paths) > 1
    swaps: list[Instruction] = []
    for path in route.paths:
        for index, leg in enumerate(path.legs):
            last = index == len(path.legs) - 1
            program, name = PROGRAMS[leg.venue]
            args: dict[str, str | int] = {"pool": leg.pool_id, "amountIn": leg.amount_in}
            if index > 0:
                # A later leg sells all the previous one received, whatever the market paid.
                args = {"pool": leg.pool_id, "amountIn": "all", "quotedAmountIn": leg.amount_in}
            args["minimumAmountOut"] = route.min_out if last and not split else 0
            swaps.append(Instruction(program_id=program, name=name, args=args))
    if split:
        swaps.append(
            Instruction(
                program_id=ASSERTION,
                name="AssertAccountDelta",
                args={"account": receiving, "minimumIncrease": route.min_out},
            )
        )
    return swaps


def priority_fee_lamports(tx: Transaction) -> int:
    m = tx.message
    return m.compute_unit_limit * m.compute_unit_price_micro_lamports // 1_000_000


@functools.lru_cache(maxsize=4096)  # a pure function of a few owners and purposes
def _address(owner: str, purpose: str) -> str:
    return base58.b58encode(hashlib.sha256(f"{owner}:{purpose}".encode()).digest()).decode()
