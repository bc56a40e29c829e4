"""Reading the whole order stream in order, fast, through a follower (`shared.follow`).

Messages are handed over in lists of up to `batch`; the callback waits while the reader
is `ahead` lists behind, which holds back flow control and so the server.

Measured against batched direct gets by stream sequence (several requests in flight):
both move 30-50k messages/s, the ordered consumer about a quarter faster, because the
client's cost is dominated by parsing message headers and direct get replies carry
several more of them (stream, subject, sequence, time stamp, pending count).
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.follow import Follower

Raw = tuple[int, bytes]  # (stream sequence, message data)


async def replay(
    js: JetStreamContext,
    stream: str,
    subject: str,
    *,
    last_seq: int,
    first_seq: int = 1,
    batch: int = 2000,
    ahead: int = 4,
    idle_timeout: float = 30.0,
) -> AsyncIterator[list[Raw]]:
    """Yield the stream's messages on `subject` from `first_seq` to `last_seq`, in order."""
    first_seq = max(first_seq, 1)
    if last_seq < first_seq:
        return
    chunks: asyncio.Queue[list[Raw] | None] = asyncio.Queue(maxsize=ahead)
    buffer: list[Raw] = []
    finished = False

    async def on_message(msg: Msg) -> None:
        nonlocal buffer, finished
        if finished:
            return
        meta = msg.metadata
        seq = meta.sequence.stream
        if seq <= last_seq:
            buffer.append((seq, msg.data))
        # No pending message: the last ones up to last_seq were deleted.
        end = seq >= last_seq or meta.num_pending == 0
        if end or len(buffer) >= batch:
            if buffer:
                await chunks.put(buffer)
            buffer = []
        if end:
            finished = True
            await chunks.put(None)

    follower = Follower(js, stream, [subject], on_message, start_seq=first_seq)
    await follower.start()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(chunks.get(), idle_timeout)
            except asyncio.TimeoutError:
                raise RuntimeError(f"no message from {stream} for {idle_timeout} s while replaying") from None
            if chunk is None:
                return
            yield chunk
    finally:
        await follower.stop()
