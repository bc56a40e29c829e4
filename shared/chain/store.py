"""Where chain records live: a create-if-absent key-value store shared by every replica."""

from __future__ import annotations

from typing import Protocol


class ChainStore(Protocol):
    """Key-value storage with atomic create-if-absent, the basis of signature dedupe."""

    async def create(self, key: str, value: bytes) -> bool:
        """Store ``value`` under ``key`` unless the key exists; False when it already did."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None."""
        ...


class InMemoryChainStore:
    """A dict-backed ChainStore for unit tests of code that drives the chain.

    Create-if-absent is atomic here because nothing awaits between the check and the write.
    """

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def create(self, key: str, value: bytes) -> bool:
        if key in self.values:
            return False
        self.values[key] = value
        return True

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)
