"""Reads from the PostgreSQL read model that the projector keeps.

PostgreSQL is not on the write path: submissions and streams go to the event log only, so
a gateway starts, serves and stays ready while the database is away. Every read here has
a budget (waiting for a connection, connecting and the query together) and a breaker:
after a failure the database is left alone for `retry_s`, so reads fail at once instead
of each waiting out the budget, and then one read tries it again. A failed read raises
`ReadModelUnavailable`, which callers answer with 503 or replace with the log's answer.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import time
from typing import Awaitable, Callable, TypeVar

import asyncpg
import msgspec

from shared import events as ev
from shared import metrics
from shared.ids import is_order_id
from shared.orders import OrderState

log = logging.getLogger(__name__)
T = TypeVar("T")

_state = msgspec.json.Decoder(OrderState)


class BadCursor(ValueError):
    pass


# A cursor names a row this server listed: a time the read model can hold, and an order id.
# Anything else is refused here, so PostgreSQL never sees a value it would refuse.
_MAX_CURSOR = 200
_EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
_LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)


def encode_cursor(created_at: dt.datetime, order_id: str) -> str:
    raw = msgspec.json.encode([created_at.isoformat(), order_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """The (created_at, order_id) position a cursor names; `BadCursor` for anything else."""
    try:
        if len(cursor) > _MAX_CURSOR or not cursor.isascii():
            raise ValueError("not a cursor")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_text, order_id = msgspec.json.decode(raw, type=tuple[str, str])
        if not created_text.isascii():
            raise ValueError("not an ASCII time")
        created = dt.datetime.fromisoformat(created_text)
        if created.tzinfo is None or not _EARLIEST <= created <= _LATEST or not is_order_id(order_id):
            raise ValueError("not a position in the read model")
    except (ValueError, TypeError, OverflowError) as exc:  # msgspec's errors are ValueErrors
        raise BadCursor("cursor is not one this server issued") from exc
    return created, order_id


class ReadModelUnavailable(Exception):
    """PostgreSQL did not answer within the budget, or failed a moment ago (the breaker is open)."""

    def __init__(self, detail: str, retry_after: float):
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


# SQLSTATE classes that mean "the database cannot serve now", not "this query is wrong":
# connection exceptions, bad credentials (a rotated password), insufficient resources
# (too many connections) and operator intervention (shutting down, starting up).
_AWAY_CLASSES = ("08", "28", "53", "57")


def _away(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError)):
        return True  # refused, reset, timed out, or a connection that died under the query
    if isinstance(exc, asyncpg.UndefinedTableError):
        return True  # not migrated yet: the projector has not caught up with this database
    return isinstance(exc, asyncpg.PostgresError) and (exc.sqlstate or "")[:2] in _AWAY_CLASSES


class ReadModel:
    """The read model behind a budget per read and a breaker (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        timeout_s: float = 0.8,
        retry_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._pool = pool
        self._timeout = timeout_s
        self._retry = retry_s
        self._clock = clock
        self._down = False  # the breaker: open after a failure, until a read answers again
        self._retry_at = 0.0
        self._probing = False  # one read at a time tries a database that was down
        #: Whether the last read answered (False until one has).
        self.available = False
        self._gauge = metrics.READ_MODEL_AVAILABLE.labels(metrics.service())
        metrics.export_pool(pool)

    async def order(self, order_id: str) -> OrderState | None:
        row = await self._run("order", lambda c: c.fetchrow("select state from orders where order_id = $1", order_id))
        return _state.decode(row["state"]) if row else None

    async def orders(
        self, *, account: str, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[OrderState], str | None]:
        """The account's orders, newest first; returns the page and the next page's cursor (or None)."""
        where, args = ["account = $1"], [account]
        if status is not None:
            args.append(status)
            where.append(f"status = ${len(args)}")
        if cursor is not None:
            created, order_id = decode_cursor(cursor)
            args += [created, order_id]
            where.append(f"(created_at, order_id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        sql = (
            "select state, created_at, order_id from orders"
            + " where " + " and ".join(where)
            + f" order by created_at desc, order_id desc limit ${len(args)}"
        )
        rows = await self._run("orders", lambda c: c.fetch(sql, *args))
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["order_id"]) if len(rows) > limit else None
        return [_state.decode(r["state"]) for r in page], next_cursor

    async def events(self, order_id: str) -> list[ev.OrderEvent]:
        rows = await self._run(
            "events", lambda c: c.fetch("select payload from order_events where order_id = $1 order by seq", order_id)
        )
        return [ev.decode(r["payload"].encode()) for r in rows]

    async def ping(self) -> bool:
        """Whether the read model answers now (False at once while the breaker is open)."""
        try:
            return await self._run("ping", lambda c: c.fetchval("select 1")) == 1
        except ReadModelUnavailable:
            return False

    async def _run(self, name: str, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        now = self._clock()
        if self._down and (now < self._retry_at or self._probing):
            raise self._unavailable(now)
        probe = self._down
        self._probing |= probe
        try:
            result = await self._bounded(name, query)
        except Exception as exc:
            if not _away(exc):
                raise
            self._fail(exc)
            raise self._unavailable(self._clock()) from exc
        finally:
            if probe:
                self._probing = False
        self._succeed()
        return result

    async def _bounded(self, name: str, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`query` on a pooled connection, given up after the budget.

        Given up, not awaited: a cancelled query may wait for PostgreSQL to confirm the
        cancel before its connection is released, which a hung server never does. That
        clean-up goes on in the background, bounded by the pool's own timeouts.
        """

        async def work() -> T:
            # A read given up or failed counts too: the time it held the caller.
            with metrics.timed(metrics.DB_QUERY_DURATION, name):
                async with self._pool.acquire() as conn:
                    return await query(conn)

        task = asyncio.ensure_future(work())
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
        except asyncio.CancelledError:
            task.cancel()
            task.add_done_callback(_discard)
            raise
        if not done:
            task.cancel()
            task.add_done_callback(_discard)
            raise asyncio.TimeoutError(f"no answer within {self._timeout:g} s")
        return task.result()

    def _fail(self, exc: BaseException) -> None:
        self._retry_at = self._clock() + self._retry
        if not self._down:
            log.warning("read model unavailable: %r; reads of one order use the event log", exc)
        self._down, self.available = True, False
        self._gauge.set(0)

    def _succeed(self) -> None:
        if self._down:
            log.info("read model available again")
        self._down, self.available = False, True
        self._gauge.set(1)

    def _unavailable(self, now: float) -> ReadModelUnavailable:
        return ReadModelUnavailable(
            "the read model (PostgreSQL) is unavailable; retry shortly", max(self._retry_at - now, 1.0)
        )

    async def monitor(self) -> None:
        """Ping every `retry_s` until cancelled: the gauge stays current without traffic, the
        pool connects at start, and a database that came back is found before a client's read."""
        while True:
            try:
                await self.ping()
            except Exception:  # not an outage (those are answered False): a fault to see, not to die of
                log.exception("read model ping failed")
            await asyncio.sleep(self._retry)

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool; connections stuck on a server that does not answer are cut."""
        try:
            await asyncio.wait_for(self._pool.close(), timeout)
        except (asyncio.TimeoutError, OSError, asyncpg.InterfaceError):
            self._pool.terminate()


def _discard(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so it is not reported as never retrieved


async def open_pool(url: str, schema: str, *, size: int = 10, connect_timeout: float = 0.8) -> asyncpg.Pool:
    """A pool that connects on first use, so the gateway starts while PostgreSQL is away."""
    return await asyncpg.create_pool(
        url,
        min_size=0,
        max_size=size,
        timeout=connect_timeout,
        command_timeout=10,
        server_settings={"search_path": schema},
    )

