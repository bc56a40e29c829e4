"""The launch log on JetStream: venues announce new pools, every service learns them.

A launch is one message on ``pools.created.<PAIR>`` in stream ``POOLS``
(`Topology.launches`). The stream keeps at most one message per subject and refuses
the next (``DiscardPolicy.NEW`` per subject), and each publish carries
``Nats-Msg-Id = <PAIR>``: so the first launch of a pair wins, for good. Publishing the
same launch again (a retry, another router replica running the same schedule) changes
nothing; publishing a *different* launch of a stored pair changes nothing either, and
`publish_launch` answers with the stored launch and ``created=False`` so the caller can
see that its own was not applied. A pair is unordered: SOL-MEW after MEW-SOL is refused
too (checked before publishing, and by every `LaunchRegistry`, which keeps the first in
stream order).

`LaunchRegistry` reads the stream from the first message with a follower
(`shared.follow`): history and live launches arrive through the same subscription in
stream order, so nothing can fall between a load and a follow, and every replica learns
the same launches in the same order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import msgspec
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared.chain import SlotClock
from shared.follow import Follower
from shared.market.config import PairSpec
from shared.market.launches import LaunchError, PoolLaunch, decode_launch, encode_launch, listed_pair
from shared.topology import Topology

__all__ = ["LaunchPublished", "LaunchRegistry", "publish_launch", "run_schedule", "stored_launch"]

log = logging.getLogger(__name__)

MAX_MESSAGES_PER_SUBJECT = 10077  # JetStream's refusal under DiscardPolicy.NEW per subject


class LaunchPublished(msgspec.Struct, frozen=True, kw_only=True):
    """What `publish_launch` did: ``launch`` is the one that holds the pair now."""

    launch: PoolLaunch
    created: bool
    """True when this call stored the launch; False when the pair was launched before."""
    stream_seq: int


async def stored_launch(js: JetStreamContext, topology: Topology, pair_id: str) -> LaunchPublished | None:
    """The stored launch of ``pair_id`` exactly as named (``"PUMP-USDC"``), or None."""
    stream, subject = topology.launches(pair_id)
    try:
        msg = await js.get_last_msg(stream, subject, direct=True)
    except nats.js.errors.NotFoundError:
        return None
    assert msg.data is not None and msg.seq is not None
    return LaunchPublished(launch=decode_launch(msg.data), created=False, stream_seq=msg.seq)


async def publish_launch(
    js: JetStreamContext, topology: Topology, launch: PoolLaunch, *, timeout: float = 5.0
) -> LaunchPublished:
    """Announce ``launch`` unless its pair was launched before; idempotent, the first launch wins."""
    stream, subject = topology.launches(launch.pair_id)
    reverse = await stored_launch(js, topology, f"{launch.quote}-{launch.base}")
    if reverse is not None:
        return reverse
    try:
        ack = await js.publish(
            subject, encode_launch(launch), timeout=timeout, stream=stream, headers={"Nats-Msg-Id": launch.pair_id}
        )
    except nats.js.errors.APIError as exc:
        if exc.err_code != MAX_MESSAGES_PER_SUBJECT:
            raise
        ack = None
    if ack is not None and not ack.duplicate:
        return LaunchPublished(launch=launch, created=True, stream_seq=ack.seq)
    # A duplicate id within the window is acknowledged without a word about the body,
    # so read what is stored to tell a retry from a rival launch.
    stored = await stored_launch(js, topology, launch.pair_id)
    if stored is None:
        raise RuntimeError(f"launch of {launch.pair_id} refused, yet none is stored")
    return stored


class LaunchRegistry:
    """Every pool launch, loaded at start and followed live.

    ``listed`` are the pairs the market has from genesis: a launch naming one of them is
    ignored. ``on_launch`` is called once per accepted launch, in stream order, from the
    stored ones during `start` to each new one as it arrives (``market.add_launch`` fits);
    an exception it raises is logged and does not stop the registry.
    """

    def __init__(
        self,
        js: JetStreamContext,
        topology: Topology,
        *,
        listed: Iterable[PairSpec] = (),
        on_launch: Callable[[PoolLaunch], object] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._js = js
        self._topology = topology
        self._listed = tuple(listed)
        self._on_launch = on_launch
        self._timeout = timeout
        self._launches: dict[frozenset[str], PoolLaunch] = {}
        self._position = 0  # stream sequence of the last message handled
        self._moved = asyncio.Event()
        self._watchers: set[asyncio.Queue[PoolLaunch | None]] = set()
        self._follower: Follower | None = None
        self._stopped = False

    async def start(self) -> None:
        """Subscribe, and return once every launch stored before the call is known."""
        stream, subjects = self._topology.launches()
        self._follower = Follower(self._js, stream, [subjects], self._on_message)
        await self._follower.start()
        await self.sync()

    async def stop(self) -> None:
        """Stop following; every `watch` iterator ends."""
        self._stopped = True
        if self._follower is not None:
            follower, self._follower = self._follower, None
            await follower.stop()
        for queue in self._watchers:
            queue.put_nowait(None)

    async def __aenter__(self) -> LaunchRegistry:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def sync(self, timeout: float | None = None) -> None:
        """Wait until every launch stored before this call is known (`TimeoutError` if it takes too long).

        A service that meets a pool it does not know yet (an order routed by a faster
        replica) calls this before concluding the pool does not exist.
        """
        info = await self._js.stream_info(self._topology.launches()[0])
        target = info.state.last_seq if info.state.messages else 0
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        while self._position < target:
            moved = self._moved
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"launch log: at stream position {self._position}, {target} expected")
            try:
                await asyncio.wait_for(moved.wait(), remaining)
            except asyncio.TimeoutError:
                continue

    def launches(self) -> tuple[PoolLaunch, ...]:
        """Every accepted launch, in stream order."""
        return tuple(self._launches.values())

    def find(self, token_a: str, token_b: str) -> PoolLaunch | None:
        """The launch trading these two symbols (either order), if one is known."""
        return self._launches.get(frozenset((token_a, token_b)))

    async def watch(self) -> AsyncIterator[PoolLaunch]:
        """Every launch known when iteration starts, then each new one, until `stop`."""
        queue: asyncio.Queue[PoolLaunch | None] = asyncio.Queue()
        for launch in self._launches.values():
            queue.put_nowait(launch)
        if self._stopped:
            queue.put_nowait(None)
        self._watchers.add(queue)
        try:
            while (launch := await queue.get()) is not None:
                yield launch
        finally:
            self._watchers.discard(queue)

    async def _on_message(self, msg: Msg) -> None:
        try:
            self._accept(msg)
        except Exception:
            log.exception("launch log: could not handle %s", msg.subject)
        finally:
            self._position = max(self._position, msg.metadata.sequence.stream)
            moved, self._moved = self._moved, asyncio.Event()
            moved.set()

    def _accept(self, msg: Msg) -> None:
        try:
            launch = decode_launch(msg.data)
        except LaunchError as exc:
            log.warning("launch log: ignoring a malformed launch on %s: %s", msg.subject, exc)
            return
        if msg.subject != self._topology.launches(launch.pair_id)[1]:
            log.warning("launch log: ignoring a launch of %s on %s", launch.pair_id, msg.subject)
            return
        earlier = self._launches.get(launch.tokens) or listed_pair(launch, self._listed)
        if earlier is not None:
            log.info("launch log: ignoring %s: %s is already listed", launch.pair_id, earlier.pair_id)
            return
        self._launches[launch.tokens] = launch
        log.info("pool launch: %s", launch.describe(), extra={"pair": launch.pair_id})
        if self._on_launch is not None:
            try:
                self._on_launch(launch)
            except Exception:
                log.exception("launch log: the launch of %s was not applied", launch.pair_id)
        for queue in self._watchers:
            queue.put_nowait(launch)


async def run_schedule(
    js: JetStreamContext,
    topology: Topology,
    launches: Sequence[PoolLaunch],
    slots: SlotClock,
    stop: asyncio.Event,
    *,
    retry_s: float = 1.0,
) -> None:
    """Publish each launch when its slot begins (at once if it has passed), until done or ``stop``.

    Safe to run in every router replica: the log keeps the first launch of each pair. A
    publish that fails (NATS unreachable) is retried every ``retry_s``.
    """
    for launch in sorted(launches, key=lambda item: (item.listed_at_slot, item.pair_id)):
        while not stop.is_set():
            wait_s = (slots.ms_of(launch.listed_at_slot) - slots.now_ms()) / 1000
            if wait_s <= 0:
                try:
                    result = await publish_launch(js, topology, launch)
                except Exception:
                    log.exception("launch schedule: publishing %s failed; retrying", launch.pair_id)
                    wait_s = retry_s
                else:
                    _log_published(result, launch)
                    break
            try:
                await asyncio.wait_for(stop.wait(), wait_s)
            except asyncio.TimeoutError:
                pass


def _log_published(result: LaunchPublished, launch: PoolLaunch) -> None:
    if result.created:
        log.info("launch schedule: launched %s", launch.describe(), extra={"pair": launch.pair_id})
    elif result.launch == launch:
        log.info("launch schedule: %s was already launched", launch.pair_id, extra={"pair": launch.pair_id})
    else:
        log.info(
            "launch schedule: %s is held by an earlier launch (%s)", launch.pair_id, result.launch.describe(),
            extra={"pair": launch.pair_id},
        )
