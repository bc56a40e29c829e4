"""python -m services.gateway: the HTTP and WebSocket API, and its ops port."""

from __future__ import annotations

import asyncio
import logging
import resource

from services.gateway.app import create_app, readiness
from services.gateway.settings import GatewaySettings
from services.gateway.transport import TransportLimits, guarded_protocol
from shared import ops, runtime
from shared.settings import load

log = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one: each stream holds a socket.

    A soft limit of 1024 (a common default) would refuse connections long before memory
    runs out; the hard limit is what the operator (ulimit, the container runtime) allows.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("open files limit stays at %d: %s", soft, exc)
    return soft


def main() -> None:
    settings = load(GatewaySettings)
    raise_open_files_limit()

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
                # Stream messages are small JSON: compressing them saves little, and each
                # connection's deflate state would cost about 40 KB of memory.
                ws_per_message_deflate=False,
            ),
            ops.serve(ops.ops_app("gateway", *readiness(app)), settings.ops_host, settings.ops_port, stop),
        )

    runtime.run("gateway", settings, serve)


if __name__ == "__main__":
    main()
