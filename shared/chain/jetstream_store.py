"""ChainStore on a JetStream key-value bucket, so the chain outlives and spans executor replicas."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

DEFAULT_MAX_AGE_S = 24 * 60 * 60


class JetStreamChainStore:
    """Chain records in a KV bucket; ``create`` relies on the server's expected-last-sequence check."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(
        cls, js: JetStreamContext, bucket_name: str, *, max_age_s: float = DEFAULT_MAX_AGE_S
    ) -> JetStreamChainStore:
        """Bind to ``bucket_name``, creating it (history 1) if no replica has yet."""
        try:
            return cls(await js.key_value(bucket_name))
        except BucketNotFoundError:
            pass
        # Direct get stays off: it may read from a lagging replica, and a submitter that lost the
        # create race must then read the winner's record.
        config = KeyValueConfig(bucket=bucket_name, history=1, ttl=max_age_s)
        try:
            return cls(await js.create_key_value(config))
        except BadRequestError:
            # Another replica created it first, possibly with different limits: use theirs.
            return cls(await js.key_value(bucket_name))

    async def create(self, key: str, value: bytes) -> bool:
        try:
            await self._kv.create(key, value)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        return entry.value
