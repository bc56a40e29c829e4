"""Batches from a durable pull consumer, collected by one subscription callback.

nats-py's `fetch` awaits each message of a batch separately, which halves throughput at
the projector's batch sizes (measured: about 21k messages/s against 40k/s collecting in a
callback, both acking each message). This puller sends the pull requests itself: first
for whatever is available now (`no_wait`), and when nothing is, a long poll for the next
single message, so an idle projector answers the first event at once.

Every message that reaches the inbox is handed out in some batch, whichever request it
answered; a status reply (no messages, timeout, consumer gone) only ends the wait. So a
late reply can end a wait early or fill a later batch, and nothing is lost either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription


class Puller:
    """Pulls from the durable consumer `durable` of `stream`; call `close` when done."""

    def __init__(self, nc: Client, stream: str, durable: str, *, api_prefix: str = "$JS.API"):
        self._nc = nc
        self._subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._received: list[Msg] = []
        self._wanted = 0
        self._answered: asyncio.Event = asyncio.Event()
        #: the last status other than "no messages" or "timed out", e.g. "503" (no consumer)
        self.last_status: str | None = None

    async def fetch(self, batch: int, *, wait: float = 1.0) -> list[Msg]:
        """Up to `batch` messages available now; if none, the first to arrive within `wait` s."""
        if self._sub is None:
            self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        # Answered at once; a request a restarting server lost is given up on after 1 s.
        msgs = await self._request({"batch": batch, "no_wait": True}, batch, timeout=1.0)
        if msgs:
            return msgs
        return await self._request({"batch": 1, "expires": int(wait * 1e9)}, 1, timeout=wait + 1.0)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _request(self, body: dict, wanted: int, *, timeout: float) -> list[Msg]:
        self._wanted = wanted
        self._answered.clear()
        if len(self._received) >= wanted:  # late replies to an earlier request fill this one
            return self._take()
        await self._nc.publish(self._subject, json.dumps(body).encode(), reply=self._inbox)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._answered.wait(), timeout)
        return self._take()

    def _take(self) -> list[Msg]:
        msgs, self._received = self._received, []
        return msgs

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is not None and not msg.data:
            if status not in ("404", "408"):
                self.last_status = status
            self._answered.set()
            return
        self._received.append(msg)
        if len(self._received) >= self._wanted:
            self._answered.set()
