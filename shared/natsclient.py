"""A nats-py client that gathers its writes (one socket write per burst) and parses headers cheaply.

nats-py writes whatever is pending as soon as its flusher task runs, which is usually
right after the publishing task yields: under load that is a write (a system call, and on
loopback the server's receive path too) for every few messages, and a wake-up of the
server for each. This client's flusher lets the event loop run `flush_delay_ms` (and at
least one round of ready tasks) before it writes, so the acks, publishes and requests of
every task that runs meanwhile leave in one write.
A message waits at most that long; with no other work ready, one loop round.

Every message a service receives from the order log carries half a dozen headers, and
nats-py parses them with a Python-level test of each name's characters: 2-3% of each
service's CPU. This client parses them with the same rules in fewer steps.

The pinned nats-py (2.16.0) is the one this was written against: its flusher is replaced
as a whole (same error handling), an integration test checks the gathering, and a unit
test holds the header parser to nats-py's own.
"""

from __future__ import annotations

import asyncio
import re

from nats.aio.client import Client


_CRLF = b"\r\n"
#: A header line nats-py keeps: a name of ASCII without whitespace (as `str.isspace` sees
#: it) or colons, maybe padded with whitespace, then a colon and the value.
_HEADER_LINE = re.compile(rb"[ \t\n\r\x0b\x0c]*([^\s:\x1c-\x1f\x80-\xff]*)[ \t\n\r\x0b\x0c]*:(.*)", re.S)


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """`Client._parse_header_lines` with the same result: `Name: Value` lines to a dict.

    A line without a colon, a name that is not ASCII or has whitespace inside is skipped;
    values are stripped and decoded as UTF-8 with replacement.
    """
    out: dict[str, str] = {}
    for line in raw.split(_CRLF):
        if (found := _HEADER_LINE.match(line)) is not None:
            name, value = found.groups()
            out[name.decode("ascii")] = value.strip().decode("utf-8", "replace")
    return out


class GatheringClient(Client):
    """`nats.aio.client.Client` with a flusher that gathers writes for `flush_delay_ms`."""

    def __init__(self, flush_delay_ms: float = 1.0) -> None:
        super().__init__()
        self._flush_delay_s = max(0.0, flush_delay_ms) / 1000
        #: Socket writes made, for tests and curiosity.
        self.writes = 0

    _parse_header_lines = staticmethod(parse_header_lines)  # replaces nats-py's own

    async def _flusher(self) -> None:  # replaces nats-py's own (client.py, `_flusher`)
        assert self._transport, "Client.connect must be called first"
        assert self._flush_queue, "Client.connect must be called first"
        while True:
            if not self.is_connected or self.is_connecting:
                break
            future: asyncio.Future = await self._flush_queue.get()
            waiting = [future]
            try:
                # Let every task that is ready now (and whatever I/O completes meanwhile)
                # add its messages before the write.
                await asyncio.sleep(0)
                if self._flush_delay_s:
                    await asyncio.sleep(self._flush_delay_s)
                while not self._flush_queue.empty():
                    waiting.append(self._flush_queue.get_nowait())
                if self._pending_data_size > 0:
                    self._transport.writelines(self._pending[:])
                    self.writes += 1
                    self._pending = []
                    self._pending_data_size = 0
                    await self._transport.drain()
            except OSError as e:
                await self._error_cb(e)
                await self._process_op_err(e)
                break
            except (asyncio.CancelledError, RuntimeError, AttributeError):
                break
            finally:
                for waiter in waiting:
                    if not waiter.done():
                        waiter.set_result(None)
