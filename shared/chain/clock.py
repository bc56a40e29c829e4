"""Slot arithmetic over an injected millisecond clock."""

from __future__ import annotations

from typing import Callable


class SlotClock:
    """Maps wall time to slots of fixed length since a shared genesis.

    Every replica that shares ``genesis_ms`` and ``slot_ms`` agrees on the slot of any instant,
    so slots and blockhash expiry need no coordination beyond the wall clock.
    """

    __slots__ = ("genesis_ms", "slot_ms", "now_ms")

    def __init__(self, genesis_ms: int, slot_ms: int, now_ms: Callable[[], int]) -> None:
        if slot_ms <= 0:
            raise ValueError(f"slot_ms must be positive, got {slot_ms}")
        self.genesis_ms = genesis_ms
        self.slot_ms = slot_ms
        self.now_ms = now_ms

    def slot_at(self, ms: int) -> int:
        """The slot containing instant ``ms``; instants before genesis belong to slot 0."""
        return max(0, (ms - self.genesis_ms) // self.slot_ms)

    def ms_of(self, slot: int) -> int:
        """The instant at which ``slot`` begins."""
        return self.genesis_ms + slot * self.slot_ms

    def current_slot(self) -> int:
        """The slot containing the clock's present instant."""
        return self.slot_at(self.now_ms())
