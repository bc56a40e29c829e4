"""Recent blockhashes: a deterministic hash of (chain seed, slot) with a validity window."""

from __future__ import annotations

import functools
import hashlib

import base58
import msgspec


class Blockhash(msgspec.Struct, frozen=True, kw_only=True):
    """A recent blockhash as a client sees it: usable up to and including ``last_valid_slot``."""

    value: str  # base58 of 32 bytes
    slot: int
    last_valid_slot: int


@functools.lru_cache(maxsize=1024)  # every step of an order asks about the same few slots
def blockhash_value(seed: str, slot: int) -> str:
    """The base58 blockhash the chain seeded with ``seed`` produced at ``slot``."""
    digest = hashlib.sha256(f"blockhash\x1f{seed}\x1f{slot}".encode()).digest()
    return base58.b58encode(digest).decode("ascii")


def blockhash_at(seed: str, slot: int, ttl_slots: int) -> Blockhash:
    """The blockhash of ``slot``, valid for ``ttl_slots`` slots after it."""
    return Blockhash(value=blockhash_value(seed, slot), slot=slot, last_valid_slot=slot + ttl_slots)
