"""What the executor does next for an order: a pure function of its state and the time."""

from __future__ import annotations

from dataclasses import dataclass

from shared.orders import OrderState, Transaction


@dataclass(frozen=True)
class Done:
    """Nothing for the executor: terminal, or not yet routed."""


@dataclass(frozen=True)
class Wait:
    until_ms: int


@dataclass(frozen=True)
class Build:
    attempt: int


@dataclass(frozen=True)
class Send:
    """A built transaction not known to be submitted: ask the chain before (re)sending."""

    tx: Transaction


@dataclass(frozen=True)
class AwaitLanding:
    tx: Transaction


@dataclass(frozen=True)
class GiveUp:
    reason: str


Step = Done | Wait | Build | Send | AwaitLanding | GiveUp


def next_step(state: OrderState | None, now_ms: int, *, max_attempts: int) -> Step:
    if state is None or state.terminal:
        return Done()
    if state.status == "submitted" and state.transaction is not None:
        return AwaitLanding(state.transaction)
    if state.status != "building":
        return Done()
    if state.transaction is not None:
        return Send(state.transaction)
    if state.attempts >= max_attempts:
        return GiveUp(f"failed after {state.attempts} attempts; last error: {state.last_failure}")
    if state.retry_at is not None and now_ms < state.retry_at:
        return Wait(state.retry_at)
    return Build(state.attempts + 1)


def backoff_ms(attempt: int, *, base_ms: int, max_ms: int) -> int:
    """Exponential: base, 2x base, 4x base ... capped at max_ms."""
    return min(max_ms, base_ms * 2 ** max(0, attempt - 1))
