from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import nats
import nats.js.errors
import pytest

from shared.chain import SlotClock
from shared.clock import SystemClock
from shared.launchlog import LaunchRegistry, publish_launch, run_schedule, stored_launch
from shared.market.launches import decode_launch, encode_launch, new_launch
from shared.market.model import Market
from shared.simulation import SimSettings
from shared.topology import Topology
from tests.helpers import eventually

REPO = Path(__file__).resolve().parents[2]
PUMP = new_launch("PUMP-USDC", listed_at_slot=1_000, price="0.002", depth="50000")


@pytest.fixture
def js(jetstream):
    return jetstream[1]


@pytest.fixture
def topology(namespace):
    return Topology(namespace=namespace)


async def stored_count(js, topology) -> int:
    return (await js.stream_info(topology.launches()[0])).state.messages


async def test_a_registry_started_before_a_launch_sees_it_live(js, topology):
    market = Market(seed=42)
    async with LaunchRegistry(js, topology, listed=market.pairs(), on_launch=market.add_launch) as registry:
        assert registry.launches() == () and market.launches() == ()
        watched = registry.watch()
        await publish_launch(js, topology, PUMP)
        assert await asyncio.wait_for(anext(watched), 5) == PUMP
        assert registry.launches() == (PUMP,) and registry.find("USDC", "PUMP") == PUMP
        assert market.launches() == (PUMP,) and market.quotes("USDC", "PUMP", 10**6, PUMP.listed_at_slot)
    assert await asyncio.wait_for(anext(watched, None), 5) is None  # stopping ends every watch


async def test_a_registry_started_after_a_launch_has_loaded_it_when_start_returns(js, topology):
    mew = new_launch("MEW-SOL", listed_at_slot=2_000, venues="both")
    await publish_launch(js, topology, PUMP)
    await publish_launch(js, topology, mew)
    market = Market(seed=42)
    async with LaunchRegistry(js, topology, on_launch=market.add_launch) as registry:
        assert registry.launches() == (PUMP, mew)
        assert market.launches() == (PUMP, mew)
        assert [launch async for launch in _take(registry.watch(), 2)] == [PUMP, mew]


async def _take(iterator, count):
    for _ in range(count):
        yield await asyncio.wait_for(anext(iterator), 5)


async def test_launches_published_while_registries_start_are_each_seen_once_in_stream_order(js, topology):
    tokens = ["PUMP", "MEW", "POPCAT", "SOL", "USDC", "USDT", "BONK", "JUP", "RAY", "WIF"]
    launches = [
        new_launch(f"{base}-{quote}", listed_at_slot=10)
        for index, base in enumerate(tokens[:3])
        for quote in tokens[index + 1 :]
    ]
    half = len(launches) // 2
    for launch in launches[:half]:
        await publish_launch(js, topology, launch)
    registries = [LaunchRegistry(js, topology) for _ in range(4)]
    publishing = asyncio.gather(*(publish_launch(js, topology, launch) for launch in launches[half:]))
    await asyncio.gather(publishing, *(registry.start() for registry in registries))
    order = [stored.launch for stored in sorted(publishing.result(), key=lambda item: item.stream_seq)]
    try:
        for registry in registries:
            await eventually(lambda: len(registry.launches()) == len(launches))
            assert registry.launches() == (*launches[:half], *order)
    finally:
        for registry in registries:
            await registry.stop()


async def test_publishing_the_same_launch_twice_stores_it_once(js, topology):
    first = await publish_launch(js, topology, PUMP)
    again = await publish_launch(js, topology, PUMP)
    assert first.created and not again.created
    assert again.launch == PUMP and again.stream_seq == first.stream_seq
    assert await stored_count(js, topology) == 1


async def test_a_second_different_launch_of_a_pair_is_not_applied_and_the_first_wins(js, topology):
    await publish_launch(js, topology, PUMP)
    rival = new_launch("PUMP-USDC", listed_at_slot=900, price="0.5", depth="10")
    reversed_rival = new_launch("USDC-PUMP", listed_at_slot=900)
    for attempt in (rival, reversed_rival):
        outcome = await publish_launch(js, topology, attempt)
        assert not outcome.created and outcome.launch == PUMP
    assert await stored_count(js, topology) == 1
    assert (await stored_launch(js, topology, "PUMP-USDC")).launch == PUMP


async def test_the_stream_refuses_a_second_launch_of_a_pair_even_without_the_dedupe_id(js, topology):
    # The dedupe window is two minutes; past it only the per-subject limit keeps the first launch.
    await publish_launch(js, topology, PUMP)
    rival = new_launch("PUMP-USDC", listed_at_slot=5, price="1")
    with pytest.raises(nats.js.errors.APIError) as refused:
        await js.publish(topology.launches("PUMP-USDC")[1], encode_launch(rival), headers={"Nats-Msg-Id": "other"})
    assert refused.value.err_code == 10077
    assert await stored_count(js, topology) == 1


async def test_a_registry_skips_malformed_launches_and_launches_of_genesis_pairs(js, topology):
    await js.publish(topology.launches("JUNK-USDC")[1], b"{not json")
    genesis = msgspec.json.decode(encode_launch(PUMP)) | {"base": "SOL"}
    await js.publish(topology.launches("SOL-USDC")[1], json.dumps(genesis).encode())
    popcat = new_launch("POPCAT-SOL", listed_at_slot=5)
    await js.publish(topology.launches("MEW-SOL")[1], encode_launch(popcat))  # a body that is not its subject's pair
    await publish_launch(js, topology, PUMP)
    market = Market(seed=42)
    async with LaunchRegistry(js, topology, listed=market.pairs(), on_launch=market.add_launch) as registry:
        assert registry.launches() == (PUMP,) and market.launches() == (PUMP,)


async def test_a_registry_keeps_the_first_of_two_orientations_of_a_pair(js, topology):
    reverse = new_launch("USDC-PUMP", listed_at_slot=5)
    await js.publish(topology.launches(reverse.pair_id)[1], encode_launch(reverse))  # past the pre-check
    await publish_launch(js, topology, PUMP)
    async with LaunchRegistry(js, topology) as registry:
        assert registry.launches() == (reverse,)


async def test_sync_returns_once_a_launch_stored_elsewhere_is_known(nats_url, js, topology):
    other = await nats.connect(nats_url)
    try:
        async with LaunchRegistry(js, topology) as registry:
            await publish_launch(other.jetstream(), topology, PUMP)
            await registry.sync()
            assert registry.launches() == (PUMP,)
    finally:
        await other.close()


async def test_a_schedule_publishes_each_launch_when_its_slot_begins(js, topology):
    clock = SystemClock()
    slots = SlotClock(genesis_ms=clock.now_ms() - 10_000, slot_ms=50, now_ms=clock.now_ms)
    now = slots.current_slot()
    pump = new_launch("PUMP-USDC", listed_at_slot=now + 4)
    mew = new_launch("MEW-SOL", listed_at_slot=now + 8)
    arrivals: dict[str, int] = {}
    stop = asyncio.Event()
    async with LaunchRegistry(js, topology, on_launch=lambda new: arrivals.setdefault(new.pair_id, clock.now_ms())):
        # Two router replicas started a little apart: each computed its own slot for PUMP-USDC.
        rival = new_launch("PUMP-USDC", listed_at_slot=now + 6)
        replicas = [
            asyncio.create_task(run_schedule(js, topology, [mew, pump], slots, stop)),
            asyncio.create_task(run_schedule(js, topology, [rival], slots, stop)),
        ]
        await asyncio.wait_for(asyncio.gather(*replicas), 5)
        await eventually(lambda: len(arrivals) == 2)
    assert arrivals["PUMP-USDC"] >= slots.ms_of(pump.listed_at_slot)
    assert arrivals["MEW-SOL"] >= slots.ms_of(mew.listed_at_slot)
    assert (await stored_launch(js, topology, "PUMP-USDC")).launch == pump
    assert await stored_count(js, topology) == 2


async def test_a_schedule_stops_waiting_when_told_to(js, topology):
    clock = SystemClock()
    slots = SlotClock(genesis_ms=0, slot_ms=400, now_ms=clock.now_ms)
    stop = asyncio.Event()
    later = new_launch("PUMP-USDC", listed_at_slot=slots.current_slot() + 10_000)
    task = asyncio.create_task(run_schedule(js, topology, [later], slots, stop))
    stop.set()
    await asyncio.wait_for(task, 2)
    assert await stored_count(js, topology) == 0


def run_tool(nats_url: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "ENGINE_NAMESPACE")}
    return subprocess.run(
        [sys.executable, "-m", "tools.launch", *args, "--nats-url", nats_url, "--namespace", namespace],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )


async def test_the_launch_tool_launches_a_pair_for_the_current_slot(nats_url, namespace, js, topology):
    market = Market(seed=42)
    async with LaunchRegistry(js, topology, listed=market.pairs(), on_launch=market.add_launch) as registry:
        before = SimSettings().slot_clock(SystemClock()).current_slot()
        done = await asyncio.to_thread(
            run_tool, nats_url, namespace, "PUMP-USDC", "--price", "0.002", "--depth", "50000", "--venue", "both"
        )
        after = SimSettings().slot_clock(SystemClock()).current_slot()
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("launched PUMP-USDC on raydium-cpmm and meteora-dlmm from slot")
        (launch,) = await eventually(registry.launches)
        assert (launch.price, launch.depth, launch.venues) == ("0.002", "50000", ("raydium-cpmm", "meteora-dlmm"))
        assert before <= launch.listed_at_slot <= after
        assert len(market.quotes("USDC", "PUMP", 10**6, launch.listed_at_slot)) == 2

        rival = await asyncio.to_thread(run_tool, nats_url, namespace, "pump-usdc", "--price", "1", "--json")
        assert rival.returncode == 1
        outcome = json.loads(rival.stdout)
        assert (outcome["created"], outcome["applied"]) == (False, False)
        assert decode_launch(json.dumps(outcome["launch"]).encode()) == launch


async def test_the_launch_tool_refuses_a_pair_with_pools_from_genesis(nats_url, namespace, js, topology):
    done = await asyncio.to_thread(run_tool, nats_url, namespace, "SOL-USDC")
    assert done.returncode == 2 and "SOL-USDC has pools from genesis" in done.stderr
    assert await stored_count(js, topology) == 0
