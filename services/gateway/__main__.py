"""python -m services.gateway: the HTTP and WebSocket API."""

from __future__ import annotations

import asyncio

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared import ops, runtime
from shared.settings import load


def main() -> None:
    settings = load(GatewaySettings)

    async def serve(stop: asyncio.Event) -> None:
        await ops.serve(create_app(settings), settings.gateway_host, settings.gateway_port, stop)

    runtime.run("gateway", settings, serve)


if __name__ == "__main__":
    main()
