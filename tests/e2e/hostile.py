"""The hardened gateway the hostile-input suites run against, and what they share.

Its transport timeouts are short (so slow senders are cut off quickly), a CORS origin is
allow-listed and a public URL is configured; a key whose text is known beforehand lets
raw requests carry it.
"""

import contextlib
from collections.abc import AsyncIterator

from shared import accounts
from shared.topology import Topology
from tests.e2e.conftest import Stack

TIMEOUT_S = 1.0
HARDENED_ENV = {
    "HEADER_TIMEOUT_S": str(TIMEOUT_S),
    "BODY_TIMEOUT_S": str(TIMEOUT_S),
    "CORS_ALLOW_ORIGINS": "https://app.example",
    "GATEWAY_PUBLIC_URL": "https://api.example",
}
UNKNOWN_ID = "0190aaaa-0000-7000-8000-000000000000"
JSON = {"content-type": "application/json"}
HOSTILE_KEY, HOSTILE_RECORD = accounts.new_key(
    "hostile", 0, random_bytes=lambda n: bytes(range(n)), submit_rate=100_000, read_rate=100_000, max_streams=1_000
)


async def stored_orders(stack: Stack) -> int:
    """Orders in the event log (each event has a subject of its own, named after its order)."""
    nc = await stack.admin_nats()
    try:
        topology = Topology(namespace=stack.env["ENGINE_NAMESPACE"])
        info = await nc.jetstream().stream_info(topology.orders_stream, subjects_filter=">")
        return len({topology.parse_order_subject(subject)[0] for subject in info.state.subjects or {}})
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def nothing_stored(stack: Stack) -> AsyncIterator[None]:
    before = await stored_orders(stack)
    yield
    assert await stored_orders(stack) == before, "a refused request stored an order"
