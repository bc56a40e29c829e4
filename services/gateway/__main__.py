"""python -m services.gateway: the HTTP and WebSocket API, and its ops port."""

from __future__ import annotations

import asyncio

from services.gateway.app import create_app, readiness
from services.gateway.settings import GatewaySettings
from services.gateway.transport import TransportLimits, guarded_protocol
from shared import ops, runtime
from shared.settings import load


def main() -> None:
    settings = load(GatewaySettings)

    async def serve(stop: asyncio.Event) -> None:
        app = create_app(settings)
        limits = TransportLimits(
            max_target_bytes=settings.max_target_bytes,
            max_header_bytes=settings.max_header_bytes,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
        )
        await asyncio.gather(
            ops.serve(
                app, settings.gateway_host, settings.gateway_port, stop,
                http=guarded_protocol(limits), ws="websockets-sansio", ws_max_size=settings.ws_max_message_bytes,
            ),
            ops.serve(ops.ops_app("gateway", *readiness(app)), settings.ops_host, settings.ops_port, stop),
        )

    runtime.run("gateway", settings, serve)


if __name__ == "__main__":
    main()
