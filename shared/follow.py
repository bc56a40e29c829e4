"""Read a stream from a position on, then follow it: one ordered consumer.

An ordered consumer is an ephemeral push consumer with flow control that the client
re-creates from the last sequence it saw if a message goes missing, so the reader sees
every message on its subjects exactly once and in stream order, history and live alike
through the one subscription: nothing can fall between a load and a follow. The server
filters (`subjects`), so a reader of a few event types is sent nothing else.

A callback that takes its time holds back flow control, and so the server: that is the
back-pressure of a reader that hands messages on (`services.projector.replay`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable, Sequence

import nats.js.api as api
from nats.aio.msg import Msg
from nats.js import JetStreamContext

OnMessage = Callable[[Msg], Awaitable[None]]


class Follower:
    """Hands every message of `stream` on `subjects` from `start_seq` on to `on_message`, in order.

    `caught_up` is set (and `on_caught_up` called, once) when the reader has handled every
    message stored when it got there: at `start` if there is none to read.
    """

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subjects: Sequence[str],
        on_message: OnMessage,
        *,
        start_seq: int = 1,
        on_caught_up: Callable[[], None] | None = None,
    ):
        self._js = js
        self._stream = stream
        self._subjects = list(subjects)
        self._on_message = on_message
        self._start_seq = max(1, start_seq)
        self._on_caught_up = on_caught_up
        self._sub = None
        self.caught_up = asyncio.Event()
        #: Stream sequence of the last message handled (0: none yet).
        self.position = 0

    async def start(self) -> None:
        """Subscribe; messages flow to the callback from now on."""
        if self._start_seq > 1:
            config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                        opt_start_seq=self._start_seq)
        else:
            config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL)
        if len(self._subjects) > 1:
            config.filter_subjects = self._subjects  # nats-server 2.10+; else the subject below filters
        self._sub = await self._js.subscribe(
            self._subjects[0], stream=self._stream, cb=self._deliver, ordered_consumer=True, config=config
        )
        info = await self._sub.consumer_info()
        if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
            self._arrived()  # nothing to read: caught up at once

    async def stop(self) -> None:
        """Stop following (safe to call twice, or on a closing connection)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _deliver(self, msg: Msg) -> None:
        meta = msg.metadata
        try:
            await self._on_message(msg)
        finally:
            self.position = meta.sequence.stream
            if meta.num_pending == 0 and not self.caught_up.is_set():
                self._arrived()

    def _arrived(self) -> None:
        if self.caught_up.is_set():
            return
        self.caught_up.set()
        if self._on_caught_up is not None:
            self._on_caught_up()
