"""Raw HTTP over a socket: requests no well-behaved client library would send."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the first byte sent to the connection closing

    def json(self) -> Any:
        return json.loads(self.body)


async def exchange(url: str, send: Callable[[asyncio.StreamWriter], Awaitable[None]], *, timeout: float = 15) -> RawAnswer:
    """Open a connection, let `send` write (and dawdle), then read until the server closes."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            sender = asyncio.ensure_future(send(writer))
            raw = await reader.read()  # until EOF: the server must close
            sender.cancel()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return RawAnswer(int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body, time.monotonic() - started)


def writes(*chunks: bytes, pause: float = 0.0) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    """A sender that writes `chunks` with `pause` seconds between them (a slow client), then waits."""

    async def send(writer: asyncio.StreamWriter) -> None:
        for i, chunk in enumerate(chunks):
            if i and pause:
                await asyncio.sleep(pause)  # the slowness under test, not a wait for a condition
            writer.write(chunk)
            await writer.drain()
        await asyncio.Event().wait()  # never finishes on its own: the server must cut it off

    return send


