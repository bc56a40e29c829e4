"""Test utilities: wait for a condition instead of sleeping, free ports, process checks, lost live messages,
a TCP relay whose connections a test cuts."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from tools.devservers import free_port

__all__ = ["CuttableRelay", "eventually", "free_port", "process_gone", "republish_paused"]

T = TypeVar("T")


async def eventually(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition not met",
) -> T:
    """Call `predicate` (plain or async) until it returns something truthy; return that.

    An AssertionError raised by `predicate` counts as "not yet", so a block of asserts can
    serve as the condition. On timeout raises AssertionError with `message` and the last
    value (or assertion) seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
        except AssertionError as error:
            last = error
        else:
            if value:
                return value  # type: ignore[return-value]
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} within {timeout:g} s; last value: {last!r}")
        await asyncio.sleep(interval)


def process_gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie awaiting its reaper counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no procfs: fall back to asking the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X")


@contextlib.asynccontextmanager
async def republish_paused(js: Any, stream: str) -> AsyncIterator[None]:
    """While inside, `stream` stores messages but republishes none: every live message is lost."""
    config = (await js.stream_info(stream)).config
    republish, config.republish = config.republish, None
    await js.update_stream(config)
    try:
        yield
    finally:
        config.republish = republish
        await js.update_stream(config)


async def ack_unhandled(js: Any, stream: str, durable: str, done: Callable[[int], Awaitable[bool] | bool]) -> int:
    """Take messages of a durable and ack them unhandled (a service that took them and died)
    until `done(acked so far)`; returns how many were acked."""
    import nats.errors

    sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
    acked = 0

    async def take() -> bool:
        nonlocal acked
        try:
            msgs = await sub.fetch(100, timeout=0.2)
        except nats.errors.TimeoutError:
            msgs = []
        for msg in msgs:
            await msg.ack()
            acked += 1
        answer = done(acked)
        return await answer if inspect.isawaitable(answer) else answer

    try:
        await eventually(take, message=f"messages of {durable} taken")
    finally:
        await sub.unsubscribe()
    return acked


class CuttableRelay:
    """A TCP relay to `upstream` ("host:port") whose connections a test can cut, and refuse while `open` is False.

    Cutting aborts both sides at once, as a dropped network path does: no close handshake.
    """

    def __init__(self, upstream: str) -> None:
        self._host, _, port = upstream.rpartition(":")
        self._port = int(port)
        self._pipes: set[asyncio.StreamWriter] = set()
        self.open = True
        self.address = ""  # "127.0.0.1:PORT" once entered
        self.connections = 0  # relayed so far

    async def __aenter__(self) -> "CuttableRelay":
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.address = "127.0.0.1:%d" % self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_) -> None:
        self.cut()
        self._server.close()

    def cut(self) -> None:
        for writer in self._pipes:
            writer.transport.abort()
        self._pipes.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        self._pipes.update((writer, up_writer))
        self.connections += 1

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
