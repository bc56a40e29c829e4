"""A nearly full order log: gateways stop taking new orders, the ones under way finish."""

from __future__ import annotations

import dataclasses

from tests.e2e.client import stream, submit
from tests.helpers import eventually


async def test_new_orders_are_refused_while_the_log_is_within_its_reserve_and_taken_again_once_it_has_room(stack):
    admin = await stack.admin_nats()
    js = admin.jetstream()
    name = f"{stack.env['ENGINE_NAMESPACE'].upper()}_ORDERS"
    config = (await js.stream_info(name)).config
    try:
        async with stack.client(timeout=30) as client:
            order = await submit(client, {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.1"})
            await stream(stack, order["orderId"])  # nothing under way: every byte below is settled
            used = (await js.stream_info(name)).state.bytes
            # 97 % full: inside the 5 % reserve. An order let in before a gateway samples the
            # stream again would be refused by the stream itself: log_full either way.
            await js.update_stream(dataclasses.replace(config, max_bytes=int(used / 0.97)))

            async def refused():
                answer = await client.post("/api/orders", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.1"})
                return answer if answer.status_code == 503 else None

            answer = await eventually(refused, timeout=20, interval=0.5, message="intake stopped")
            assert answer.json()["error"] == "log_full" and answer.headers["Retry-After"] == "30"
            await js.update_stream(config)

            async def accepted():
                answer = await client.post("/api/orders", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.1"})
                return answer.status_code == 202

            await eventually(accepted, timeout=20, interval=0.5, message="intake resumed")
    finally:
        await js.update_stream(config)
        await admin.close()
