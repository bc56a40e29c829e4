"""Identifiers: time-ordered order ids, ids derived from client keys, random event ids."""

from __future__ import annotations

import os
import re
import uuid
from typing import Callable

from shared.clock import Clock

# Order ids name a NATS subject token, so they are restricted to a safe alphabet and
# length. Always `fullmatch`: `$` would let a trailing newline through into a subject.
ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CLIENT_KEYS = uuid.UUID("6f1b0c5e-2f0a-4f8e-9a57-3c0f5a1d9e42")


class Ids:
    def __init__(self, clock: Clock, random_bytes: Callable[[int], bytes] = os.urandom):
        self._clock = clock
        self._random = random_bytes

    def order_id(self) -> str:
        """A UUIDv7: sorts by creation time, unique without coordination."""
        ms = self._clock.now_ms() & ((1 << 48) - 1)
        rand = int.from_bytes(self._random(10), "big")
        value = (ms << 80) | (0x7 << 76) | ((rand >> 68) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
        return str(uuid.UUID(int=value))

    def event_id(self) -> str:
        return str(uuid.UUID(bytes=self._random(16), version=4))


def order_id_for_client_key(client_order_id: str) -> str:
    """The same client key always names the same order, on every gateway replica."""
    return str(uuid.uuid5(_CLIENT_KEYS, client_order_id))


def is_order_id(value: object) -> bool:
    """True for a string that can name an order (and its NATS subjects)."""
    return isinstance(value, str) and ORDER_ID.fullmatch(value) is not None
