"""A nats-py client whose writes to the server are gathered: one socket write per burst.

nats-py writes whatever is pending as soon as its flusher task runs, which is usually
right after the publishing task yields: under load that is a write (a system call, and on
loopback the server's receive path too) for every few messages. Profiles of the executor
at 200 orders/s put about half of its CPU in those writes. This client's flusher lets the
event loop run `flush_delay_ms` (and at least one round of ready tasks) before it writes,
so the acks, publishes and requests of every task that runs meanwhile leave in one write.
A message waits at most that long; with no other work ready, one loop round.

The pinned nats-py (2.16.0) is the one this was written against: its flusher is replaced
as a whole (same error handling), and the unit test checks the gathering.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client


class GatheringClient(Client):
    """`nats.aio.client.Client` with a flusher that gathers writes for `flush_delay_ms`."""

    def __init__(self, flush_delay_ms: float = 1.0) -> None:
        super().__init__()
        self._flush_delay_s = max(0.0, flush_delay_ms) / 1000
        #: Socket writes made, for tests and curiosity.
        self.writes = 0

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
