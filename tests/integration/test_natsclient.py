"""The gathering NATS client against a real nats-server: one write per burst, nothing lost."""

import asyncio

from shared.natsclient import GatheringClient
from tests.helpers import eventually


async def connected(nats_url: str, flush_delay_ms: float) -> GatheringClient:
    nc = GatheringClient(flush_delay_ms=flush_delay_ms)
    await nc.connect(nats_url)
    return nc


async def test_a_burst_of_publishes_from_many_tasks_leaves_in_one_write_and_every_message_arrives(nats_url, namespace):
    receiver = await connected(nats_url, 0)
    sender = await connected(nats_url, 5)
    got: list[bytes] = []

    async def on_message(msg) -> None:
        got.append(msg.data)

    await receiver.subscribe(f"{namespace}.burst", cb=on_message)
    await receiver.flush()
    try:
        await sender.flush()
        before = sender.writes
        await asyncio.gather(*(sender.publish(f"{namespace}.burst", str(n).encode()) for n in range(200)))
        await sender.flush()  # resolves once its PING has been written after the burst
        await eventually(lambda: len(got) == 200, message="every message delivered")
        assert sorted(int(m) for m in got) == list(range(200))
        assert sender.writes - before <= 2  # the burst, then the PING of the flush
    finally:
        await sender.close()
        await receiver.close()


async def test_with_no_delay_a_request_is_answered_at_once(nats_url, namespace):
    nc = await connected(nats_url, 0)

    async def echo(msg) -> None:
        await nc.publish(msg.reply, msg.data)

    await nc.subscribe(f"{namespace}.echo", cb=echo)
    try:
        reply = await nc.request(f"{namespace}.echo", b"ping", timeout=1)
        assert reply.data == b"ping"
    finally:
        await nc.close()
