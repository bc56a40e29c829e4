"""Per-key rate limits counted by the broker, against a real nats-server."""

import nats

from services.gateway.limits import RateLimiter


class FrozenClock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_two_replicas_share_one_count_per_key_kind_and_window(jetstream):
    nc, js, topology = jetstream
    clock = FrozenClock(1_000_000.25)
    one, two = (RateLimiter(js, topology, window_s=10, clock=clock) for _ in range(2))
    decisions = [await (one if i % 2 else two).hit("key1", "submit", 3) for i in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    assert decisions[-1].headers()["Retry-After"] == "10" and decisions[-1].reset_s == 10
    # Another kind, another key and the next window each count from zero.
    assert (await one.hit("key1", "read", 1)).allowed
    assert (await one.hit("key2", "submit", 1)).allowed
    clock.now += 10
    assert (await two.hit("key1", "submit", 3)).remaining == 2


async def test_without_the_broker_each_replica_counts_alone(nats_url, jetstream):
    _, _, topology = jetstream
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await nc.close()
    limiter = RateLimiter(js, topology, window_s=10, clock=FrozenClock(500.0))
    decisions = [await limiter.hit("key1", "submit", 2) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
