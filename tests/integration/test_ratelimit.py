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


async def test_a_busy_key_leases_slots_and_asks_the_broker_rarely(jetstream):
    nc, js, topology = jetstream
    limiter = RateLimiter(js, topology, window_s=10, clock=FrozenClock(2_000_000.0))
    decisions = [await limiter.hit("busy", "read", 1_000) for _ in range(1_001)]
    assert all(d.allowed for d in decisions[:1_000]) and not decisions[1_000].allowed
    assert [d.remaining for d in decisions[:3]] == [999, 998, 997]
    info = await js.stream_info(topology.ratelimit_stream)
    # Leases double up to a sixteenth of the limit (1, 2, ... 32, then 62 at a time): 22
    # round trips to the broker for 1,000 requests, and none for the refusal.
    assert info.state.messages == 22


async def test_spread_over_replicas_a_key_never_gets_more_than_its_limit(jetstream):
    nc, js, topology = jetstream
    clock = FrozenClock(3_000_000.0)
    replicas = [RateLimiter(js, topology, window_s=10, clock=clock) for _ in range(3)]
    admitted = 0
    for i in range(600):
        admitted += (await replicas[(i * 7) % 3].hit("spread", "submit", 160)).allowed
    # Never more. Less only by slots a replica leased and did not use, and here every replica
    # keeps asking after the window is spent, so each slot it leased is used: exactly the limit.
    assert admitted == 160


async def test_a_request_begun_as_the_window_turns_counts_in_the_new_window(jetstream):
    nc, js, topology = jetstream
    clock = FrozenClock(4_000_009.9)
    limiter = RateLimiter(js, topology, window_s=10, clock=clock)
    assert (await limiter.hit("turn", "read", 5)).allowed
    clock.now = 4_000_010.0
    assert (await limiter.hit("turn", "read", 5)).allowed
    clock.now = 4_000_009.95  # a request that read the clock just before the turn
    late = await limiter.hit("turn", "read", 5)
    assert late.allowed and late.remaining == 3
