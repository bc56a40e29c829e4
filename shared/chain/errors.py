"""Errors the simulated chain raises at submission, split by whether a retry can help."""

from __future__ import annotations

from typing import Literal

TransientKind = Literal["node_busy", "blockhash_not_found", "blockhash_expired"]


class ChainError(Exception):
    """Base class of every error the chain reports."""


class TransientChainError(ChainError):
    """The submission was refused but a retry (with a fresh blockhash) may succeed.

    ``kind`` is one of ``node_busy``, ``blockhash_not_found`` or ``blockhash_expired``.
    Nothing was recorded on the chain: the signature did not land and never will.
    """

    def __init__(self, kind: TransientKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind: TransientKind = kind
        self.message = message


class PermanentChainError(ChainError):
    """The transaction is malformed; resubmitting it, or a rebuilt copy of it, cannot succeed."""
