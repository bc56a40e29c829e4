"""python -m services.router: quotes every venue, routes each accepted order, fires resting ones.

The parts and how they are wired are in `services.router.compose`.
"""

from __future__ import annotations

import asyncio

from services.router import compose
from services.router.settings import RouterSettings
from shared import ops, runtime
from shared.clock import SystemClock
from shared.settings import load


def main() -> None:
    settings = load(RouterSettings)
    runtime.run("router", settings, lambda stop: serve(settings, stop))


async def serve(settings: RouterSettings, stop: asyncio.Event) -> None:
    async with runtime.nats_connection(settings, "router") as nc:
        router = await compose.build(settings, nc, SystemClock())
        await router.start()
        app = ops.ops_app("router", router.checks())
        await asyncio.gather(router.run(stop), ops.serve(app, settings.ops_host, settings.ops_port, stop))


if __name__ == "__main__":
    main()
