"""ChainStore on a JetStream key-value bucket, so the chain outlives and spans executor replicas."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.setup import SetupMissing

DEFAULT_MAX_AGE_S = 24 * 60 * 60


async def ensure_bucket(
    js: JetStreamContext, bucket_name: str, *, max_age_s: float = DEFAULT_MAX_AGE_S, replicas: int = 1
) -> None:
    """Create the chain's bucket (history 1) unless it exists; the admin set-up step's job.

    `replicas` as the streams': the chain's records must outlive the loss of a broker node.
    """
    try:
        await js.key_value(bucket_name)
        return
    except BucketNotFoundError:
        pass
    # Direct get stays off: it may read from a lagging replica, and a submitter that lost the
    # create race must then read the winner's record.
    config = KeyValueConfig(bucket=bucket_name, history=1, ttl=max_age_s, replicas=replicas)
    try:
        await js.create_key_value(config)
    except BadRequestError:
        pass  # created meanwhile, possibly with different limits: keep theirs


class JetStreamChainStore:
    """Chain records in a KV bucket; ``create`` relies on the server's expected-last-sequence check."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket_name: str) -> JetStreamChainStore:
        """Bind to the existing bucket ``bucket_name`` (`SetupMissing` if the set-up step has not run)."""
        try:
            return cls(await js.key_value(bucket_name))
        except BucketNotFoundError:
            raise SetupMissing(f"key-value bucket {bucket_name}") from None

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
