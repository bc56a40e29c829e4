"""The gateway's key records: re-read after their time, kept while NATS is away, 503 when unknown then."""

import pytest

from services.gateway.auth import KeyCache
from services.gateway.errors import ApiError
from shared import accounts


class Store:
    def __init__(self):
        self.records = {}
        self.reads = 0
        self.down = False

    async def get(self, key_id):
        self.reads += 1
        if self.down:
            raise ConnectionError("nats is away")
        return self.records.get(key_id)


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


async def test_a_record_is_read_again_only_after_its_time():
    store, clock = Store(), Clock()
    _, record = accounts.new_key("a", 1)
    store.records[record.key_id] = record
    cache = KeyCache(store, ttl=5, clock=clock)
    assert await cache.record(record.key_id) == record
    assert await cache.record(record.key_id) == record and store.reads == 1
    clock.now = 5.0
    del store.records[record.key_id]  # revoked and gone
    assert await cache.record(record.key_id) is None and store.reads == 2


async def test_unknown_ids_are_remembered_too():
    store, clock = Store(), Clock()
    cache = KeyCache(store, ttl=5, clock=clock)
    assert await cache.record("aaaaaaaaaaaa") is None
    assert await cache.record("aaaaaaaaaaaa") is None and store.reads == 1


async def test_while_nats_is_away_known_keys_work_and_others_get_503():
    store, clock = Store(), Clock()
    _, record = accounts.new_key("a", 1)
    store.records[record.key_id] = record
    cache = KeyCache(store, ttl=5, clock=clock)
    await cache.record(record.key_id)
    store.down, clock.now = True, 60.0
    assert await cache.record(record.key_id) == record
    with pytest.raises(ApiError) as refused:
        await cache.record("bbbbbbbbbbbb")
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
