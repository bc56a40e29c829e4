"""Reads from the PostgreSQL read model that the projector keeps."""

from __future__ import annotations

import base64
import datetime as dt

import asyncpg
import msgspec

from shared import events as ev
from shared.ids import is_order_id
from shared.orders import OrderState

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


class ReadModel:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def order(self, order_id: str) -> OrderState | None:
        row = await self._pool.fetchrow("select state from orders where order_id = $1", order_id)
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
        rows = await self._pool.fetch(sql, *args)
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["order_id"]) if len(rows) > limit else None
        return [_state.decode(r["state"]) for r in page], next_cursor

    async def events(self, order_id: str) -> list[ev.OrderEvent]:
        rows = await self._pool.fetch("select payload from order_events where order_id = $1 order by seq", order_id)
        return [ev.decode(r["payload"].encode()) for r in rows]

    async def ping(self) -> bool:
        return await self._pool.fetchval("select 1") == 1


async def open_pool(url: str, schema: str, *, size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url, min_size=1, max_size=size, server_settings={"search_path": schema}, command_timeout=10
    )
