"""A simulated Solana-like chain shared by every executor replica through a key-value store.

Pure parts (slots, blockhashes, signatures, draws) take values and return values; the only I/O
is the ChainStore, which in production is a JetStream KV bucket.
"""

from shared.chain.blockhash import Blockhash, blockhash_at, blockhash_value
from shared.chain.clock import SlotClock
from shared.chain.config import ChainConfig, FailureMix
from shared.chain.draws import FailureKind, confirm_delay_for, draw_key, failure_for
from shared.chain.errors import ChainError, PermanentChainError, TransientChainError, TransientKind
from shared.chain.jetstream_store import JetStreamChainStore
from shared.chain.records import Settle, SettleOutcome, SubmitReceipt, TxRecord, TxStatus
from shared.chain.simulated import SimulatedChain
from shared.chain.store import ChainStore, InMemoryChainStore
from shared.chain.transaction import (
    MEMO_PROGRAM,
    Instruction,
    Message,
    SwapIntent,
    Transaction,
    check_well_formed,
    memo_of,
    message_bytes,
    sign,
    signed,
)

__all__ = [
    "Blockhash",
    "ChainConfig",
    "ChainError",
    "ChainStore",
    "FailureKind",
    "FailureMix",
    "InMemoryChainStore",
    "Instruction",
    "MEMO_PROGRAM",
    "JetStreamChainStore",
    "Message",
    "PermanentChainError",
    "Settle",
    "SettleOutcome",
    "SimulatedChain",
    "SlotClock",
    "SubmitReceipt",
    "SwapIntent",
    "Transaction",
    "TransientChainError",
    "TransientKind",
    "TxRecord",
    "TxStatus",
    "blockhash_at",
    "blockhash_value",
    "check_well_formed",
    "confirm_delay_for",
    "draw_key",
    "failure_for",
    "memo_of",
    "message_bytes",
    "sign",
    "signed",
]
