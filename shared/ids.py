"""Identifiers: time-ordered order ids, ids derived from client keys, random event ids."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from typing import Callable

from shared.clock import Clock

# Order ids name a NATS subject token, so they are restricted to a safe alphabet and
# length. Always `fullmatch`: `$` would let a trailing newline through into a subject.
ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Ids:
    def __init__(self, clock: Clock, random_bytes: Callable[[int], bytes] = os.urandom, *, secret: bytes = b""):
        self._clock = clock
        self._random = random_bytes
        self._secret = secret

    def keyed_order_id(self, account: str, client_order_id: str) -> str:
        """The order id an account's `clientOrderId` names (needs the server's secret)."""
        if not self._secret:
            raise RuntimeError("keyed order ids need the server's order-id secret")
        return order_id_for_client_key(self._secret, account, client_order_id)

    def order_id(self) -> str:
        """A UUIDv7: sorts by creation time, unique without coordination."""
        ms = self._clock.now_ms() & ((1 << 48) - 1)
        rand = int.from_bytes(self._random(10), "big")
        value = (ms << 80) | (0x7 << 76) | ((rand >> 68) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
        return str(uuid.UUID(int=value))

    def event_id(self) -> str:
        return str(uuid.UUID(bytes=self._random(16), version=4))


def order_id_for_client_key(secret: bytes, account: str, client_order_id: str) -> str:
    """The same account and client key always name the same order, on every gateway replica.

    A keyed HMAC, so nobody without the server's secret can compute another account's
    order id from a guessed `clientOrderId`; formatted as a UUID (version 8).
    """
    digest = hmac.new(secret, f"{account}\x00{client_order_id}".encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest[:16], "big")
    value = (value & ~(0xF << 76)) | (0x8 << 76)  # version 8: application-defined
    value = (value & ~(0b11 << 62)) | (0b10 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def is_order_id(value: object) -> bool:
    """True for a string that can name an order (and its NATS subjects)."""
    return isinstance(value, str) and ORDER_ID.fullmatch(value) is not None
