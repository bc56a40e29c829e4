"""Event builders for tests: realistic order histories in a line each."""

from __future__ import annotations

import itertools
from typing import Any

from shared import events as ev

_ids = itertools.count(1)

SPEC = ev.OrderSpec(
    order_type="market", token_in="SOL", token_out="USDC", amount_in=1_000_000_000, slippage_bps=50, request_hash="h",
    account="trader",
)
ROUTE = ev.Route(
    venue="raydium-cpmm",
    pool_id="raydium-cpmm:SOL-USDC",
    amount_in=1_000_000_000,
    expected_out=149_000_000,
    min_out=148_255_000,
    fee=2_500_000,
    price_impact_bps=3,
    slot=100,
    quotes=(
        ev.QuoteSnapshot(venue="raydium-cpmm", pool_id="raydium-cpmm:SOL-USDC", amount_in=1_000_000_000,
                         amount_out=149_000_000, fee=2_500_000, price_impact_bps=3),
        ev.QuoteSnapshot(venue="meteora-dlmm", pool_id="meteora-dlmm:SOL-USDC", amount_in=1_000_000_000,
                         amount_out=148_900_000, fee=2_000_000, price_impact_bps=2),
    ),
)


def make(cls: type[ev.Event], order_id: str = "o1", seq: int = 1, at: int = 1_000, **fields: Any) -> ev.OrderEvent:
    """One event of `cls` with plausible fields, overridable by keyword."""
    defaults: dict[str, Any] = {
        ev.OrderAccepted: {"order": SPEC},
        ev.RoutingStarted: {},
        ev.OrderRouted: {"route": ROUTE},
        ev.TransactionBuilt: {
            "attempt": 1, "signature": "sig1", "blockhash": "bh1", "blockhash_slot": 100, "last_valid_slot": 125,
            "fee_payer": "payer", "compute_unit_limit": 200_000, "compute_unit_price": 50_000,
            "priority_fee_lamports": 10_000, "instructions": ("SetComputeUnitLimit", "swap"),
        },
        ev.TransactionSubmitted: {"attempt": 1, "signature": "sig1", "slot": 101},
        ev.AttemptFailed: {"attempt": 1, "signature": "sig1", "kind": "dropped", "reason": "dropped", "retry_at": at + 250},
        ev.OrderConfirmed: {"signature": "sig1", "slot": 103, "amount_out": 149_100_000},
        ev.OrderFailed: {"code": "slippage_exceeded", "reason": "slippage exceeded"},
        ev.OrderOpened: {"trigger": "limit_price", "pair": "SOL-USDC"},
        ev.OrderTriggered: {"slot": 120, "reason": "limit reached", "best_out": 150_000_000},
        ev.OrderExpired: {"reason": "good-till-date passed"},
        ev.OrderCancelled: {"reason": "cancelled by client"},
    }[cls]
    defaults.update(fields)
    return cls(order_id=order_id, seq=seq, event_id=f"e{next(_ids)}", occurred_at=at, correlation_id=order_id, **defaults)


def history(*classes: type[ev.Event], order_id: str = "o1", start_at: int = 1_000) -> list[ev.OrderEvent]:
    """Events of the given classes with consecutive seqs, 10 ms apart."""
    return [make(cls, order_id, seq=i, at=start_at + 10 * i) for i, cls in enumerate(classes, start=1)]


HAPPY = (
    ev.OrderAccepted, ev.RoutingStarted, ev.OrderRouted, ev.TransactionBuilt, ev.TransactionSubmitted, ev.OrderConfirmed
)
