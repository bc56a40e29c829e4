"""Accounts and API keys: random keys shown once, stored only as a hash, revocable.

A key reads `dex_<keyId>_<secret>`: `keyId` names the stored record (so a lookup needs no
scan), `secret` is 32 random bytes. The record holds the SHA-256 of the whole key, never
the key: a high-entropy random key needs no slow hash, and a leaked record cannot be
turned back into a key. Records live in the JetStream key-value bucket
`topology.accounts_bucket` under `keys.<keyId>`, so authentication needs NATS only (it goes
on while PostgreSQL is away) and a revocation reaches every gateway replica by its watch.

The same bucket holds the gateway's secrets (`secrets.<name>`), such as the key that makes
order ids impossible to compute from a guessed `clientOrderId`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from typing import Callable

import msgspec
import nats.js.api as api
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from shared.setup import SetupMissing
from shared.topology import Topology

ACCOUNT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
KEY_ID = re.compile(r"[a-z0-9]{12}")
API_KEY = re.compile(r"dex_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
ORDER_ID_SECRET = "secrets.order-ids"
_KEY_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class AccountError(ValueError):
    pass


class ApiKey(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A stored API key: who it belongs to and what it may do, never the key itself."""

    key_id: str
    account: str
    key_hash: str  # hex SHA-256 of the whole key
    created_at: int  # ms since epoch
    revoked_at: int | None = None
    #: Per-key limits; None takes the gateway's configured default.
    submit_rate: int | None = None
    read_rate: int | None = None
    max_streams: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def check_account(name: str) -> str:
    if not isinstance(name, str) or not ACCOUNT.fullmatch(name):
        raise AccountError("an account name is 1-64 characters of a-z, 0-9, _ . - starting with a letter or digit")
    return name


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(
    account: str, now_ms: int, *, random_bytes: Callable[[int], bytes] = os.urandom, **limits: int | None
) -> tuple[str, ApiKey]:
    """A fresh key for `account`: the key (show it once) and the record to store."""
    check_account(account)
    key_id = "".join(_KEY_ID_ALPHABET[b % len(_KEY_ID_ALPHABET)] for b in random_bytes(12))
    secret = base64.urlsafe_b64encode(random_bytes(32)).decode().rstrip("=")
    key = f"dex_{key_id}_{secret}"
    return key, ApiKey(key_id=key_id, account=account, key_hash=hash_key(key), created_at=now_ms, **limits)


def key_id_of(key: str) -> str | None:
    """The key id named by a well-formed key, or None."""
    match = API_KEY.fullmatch(key)
    return match.group(1) if match else None


def verify(key: str, record: ApiKey) -> bool:
    return record.active and hmac.compare_digest(hash_key(key), record.key_hash)


_decode = msgspec.json.Decoder(ApiKey)
_encode = msgspec.json.Encoder()


def decode_record(raw: bytes) -> ApiKey:
    return _decode.decode(raw)


async def ensure_accounts(js: JetStreamContext, topology: Topology, *, replicas: int = 1) -> None:
    """Create the accounts bucket and the order-id secret if missing (an admin step)."""
    try:
        kv = await js.key_value(topology.accounts_bucket)
    except nats.js.errors.BucketNotFoundError:
        kv = await js.create_key_value(
            api.KeyValueConfig(
                bucket=topology.accounts_bucket,
                history=5,
                replicas=replicas,
                storage=api.StorageType.FILE,
                description="API keys (hashed) and gateway secrets",
            )
        )
    try:
        await kv.create(ORDER_ID_SECRET, base64.b64encode(os.urandom(32)))
    except nats.js.errors.KeyWrongLastSequenceError:
        pass  # set up before: the secret never changes, or every order id would


class KeyStore:
    """The API keys in the accounts bucket."""

    def __init__(self, kv: KeyValue):
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, topology: Topology) -> KeyStore:
        try:
            return cls(await js.key_value(topology.accounts_bucket))
        except nats.js.errors.BucketNotFoundError:
            raise SetupMissing(f"key-value bucket {topology.accounts_bucket}") from None

    async def add(self, record: ApiKey) -> None:
        await self.kv.create(f"keys.{record.key_id}", _encode.encode(record))

    async def get(self, key_id: str) -> ApiKey | None:
        if not KEY_ID.fullmatch(key_id):
            return None
        try:
            entry = await self.kv.get(f"keys.{key_id}")
        except nats.js.errors.KeyNotFoundError:
            return None
        return decode_record(entry.value) if entry.value else None

    async def all(self) -> list[ApiKey]:
        try:
            names = await self.kv.keys()  # (its `filters` match substrings, not subjects)
        except nats.js.errors.NoKeysError:
            return []
        records = [await self.get(name.removeprefix("keys.")) for name in names if name.startswith("keys.")]
        return sorted((r for r in records if r is not None), key=lambda r: (r.account, r.created_at))

    async def revoke(self, key_id: str, now_ms: int) -> ApiKey:
        record = await self.get(key_id)
        if record is None:
            raise AccountError(f"no key with id {key_id!r}")
        if not record.active:
            return record
        revoked = msgspec.structs.replace(record, revoked_at=now_ms)
        await self.kv.put(f"keys.{key_id}", _encode.encode(revoked))
        return revoked

    async def order_id_secret(self) -> bytes:
        try:
            entry = await self.kv.get(ORDER_ID_SECRET)
        except nats.js.errors.KeyNotFoundError:
            raise SetupMissing(f"{ORDER_ID_SECRET} in the accounts bucket") from None
        return base64.b64decode(entry.value)
