"""The read model in PostgreSQL: loading order rows and writing projections (asyncpg).

Every write of the projector and of a rebuild holds `lock`, so a batch and a rebuild never
interleave. A batch's write is one statement (`write`: events, orders, rejects and the
position, each column passed as one array and unnested), so it is one round trip and one
transaction of its own, and it writes an order only from the row the fold started from.
With the load before it, a batch costs two round trips. A rebuild writes into emptied
tables with COPY.

Measured through `Projector.apply` (`python -m bench.projector`, 2 busy cores, fsync
off, 100,000 orders in the table): a batch of 1 event went from 7 round trips to 2 and
from about 670 to 440 us of CPU (projector and PostgreSQL together; on loopback TCP each
round trip costs the projector about 100 us in `send` alone); batches of 500 went from
about 30 to 22-24 us of PostgreSQL CPU per event, mostly by storing the JSON columns as
json rather than jsonb. Earlier, for 500-event batches: COPY into a temporary table plus
one INSERT ... ON CONFLICT was 10-15% below unnest, executemany about 20% below.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping, Sequence

import asyncpg
import msgspec

from services.projector.fold import Current, EventRow, Projection, Reject
from services.projector.migrations import quote_ident
from shared.orders import OrderState

PROJECTION_LOCK = 0x70726F6A  # advisory lock class shared by batches and rebuilds; second key: schema
POSITION = "projector"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_ORDERS = (
    ("order_id", "text"),
    ("client_order_id", "text"),
    ("order_type", "text"),
    ("status", "text"),
    ("token_in", "text"),
    ("token_out", "text"),
    ("amount_in", "numeric"),
    ("slippage_bps", "int"),
    ("venue", "text"),
    ("expected_out", "numeric"),
    ("min_out", "numeric"),
    ("amount_out", "numeric"),
    ("signature", "text"),
    ("attempts", "int"),
    ("failure_code", "text"),
    ("failure_reason", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("last_seq", "int"),
    ("last_stream_seq", "bigint"),
    ("state", "json"),
    ("account", "text"),
)
_EVENTS = (
    ("order_id", "text"),
    ("seq", "int"),
    ("stream_seq", "bigint"),
    ("event_type", "text"),
    ("occurred_at", "timestamptz"),
    ("payload", "json"),
)
_REJECTS = (("order_id", "text"), ("seq", "int"), ("stream_seq", "bigint"), ("event_type", "text"), ("reason", "text"))
ORDER_COLUMNS = tuple(name for name, _ in _ORDERS)
EVENT_COLUMNS = tuple(name for name, _ in _EVENTS)
REJECT_COLUMNS = tuple(name for name, _ in _REJECTS)


_E = 5  # parameters: $1 lock key, $2 schema, $3 position name, $4 position, then the columns
_O = _E + len(_EVENTS)
_R = _O + len(_ORDERS) + 1  # the orders' columns and each one's base


def _arrays(columns: Sequence[tuple[str, str]], first: int) -> str:
    return ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(columns, first))


# One statement, so one round trip and one transaction. Every row written is reached
# through the lock row (`taken`, evaluated once) or through an order written after it, so
# nothing is written before the projection lock is held; it is held to the end of the
# statement's transaction, or of the caller's.
#
# An order is written only from the row its fold started from (`base`: that row's
# last_stream_seq, 0 for none): UPDATE re-checks the newest committed version of a row
# that changed after the statement's snapshot (taken before the lock was granted), and
# INSERT ... ON CONFLICT sees a row inserted meanwhile. An order the fold moved whose row
# moved too since its load is `stale`: neither it nor its events nor its rejects are
# written, and its id comes back. (The rejects of an order the fold did not move are
# recorded as they are: the state machine refuses an event the same way whoever folds it.)
_WRITE = (
    "with taken as materialized (select pg_advisory_xact_lock($1, hashtext($2))::text),"
    f" folded as (select u.* from taken, unnest({_arrays(_ORDERS, _O)}, ${_R - 1}::bigint[])"
    f" u({', '.join(ORDER_COLUMNS)}, base)),"
    " updated as (update orders o set " + ", ".join(f"{c} = f.{c}" for c in ORDER_COLUMNS[1:])
    # The key condition on the parameter leads the planner to the primary key whatever it
    # estimates of `folded`.
    + f" from folded f where o.order_id = any(${_O}::text[]) and o.order_id = f.order_id"
    " and o.last_stream_seq = f.base returning o.order_id),"
    f" inserted as (insert into orders ({', '.join(ORDER_COLUMNS)}) select {', '.join(ORDER_COLUMNS)} from folded"
    " where base = 0 on conflict (order_id) do nothing returning order_id),"
    " stale as (select order_id from folded f where not exists (select from updated u where u.order_id = f.order_id)"
    " and not exists (select from inserted i where i.order_id = f.order_id)),"
    f" events as (insert into order_events ({', '.join(EVENT_COLUMNS)}) select e.* from unnest({_arrays(_EVENTS, _E)})"
    f" e({', '.join(EVENT_COLUMNS)})"
    " where e.order_id in (select order_id from updated union all select order_id from inserted)"
    " on conflict do nothing),"
    " position as (insert into projector_positions (name, stream_seq, updated_at)"
    " select $3::text, $4::bigint, now() from taken where $4::bigint > 0"
    " on conflict (name) do update set"
    " stream_seq = greatest(projector_positions.stream_seq, excluded.stream_seq), updated_at = now()),"
    f" rejected as (insert into projector_rejects ({', '.join(REJECT_COLUMNS)})"
    f" select r.* from taken, unnest({_arrays(_REJECTS, _R)}) r({', '.join(REJECT_COLUMNS)})"
    " where r.order_id not in (select order_id from stale)"
    " on conflict do nothing returning order_id, seq)"
    " select order_id, seq from rejected union all select order_id, null from stale"
)
_SET_POSITION = (
    "insert into projector_positions (name, stream_seq, updated_at) values ($1, $2, now())"
    " on conflict (name) do update set stream_seq = excluded.stream_seq, updated_at = now()"
)

_state_decoder = msgspec.json.Decoder(OrderState)
_encoder = msgspec.json.Encoder()


async def create_pool(database_url: str, schema: str, *, max_size: int = 4, timeout: float = 60.0) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified table names in `schema` (`timeout`: to connect).

    Prepared statements keep one generic plan: each one here finds its rows by a primary
    key or a partial index whatever its parameters, and planning the batch write anew
    each time (what the planner chooses, its row estimates being closer with the arrays
    in hand) cost 10-15% of PostgreSQL's time per batch.
    """
    return await asyncpg.create_pool(
        database_url,
        timeout=timeout,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": quote_ident(schema), "plan_cache_mode": "force_generic_plan"},
        reset=_keep_session,
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset on release: every lock and setting here is transaction-scoped.

    The default reset (unlock all, close cursors, unlisten, reset settings) is a round
    trip per batch, about 5% of the projector's time.
    """


async def hold_tables(conn: asyncpg.Connection) -> None:
    """Keep every projector write out until the transaction ends (readers stay in).

    Whoever empties the tables takes this before the projection lock: a serving projector's
    write locks the tables as its statement starts and the projection lock inside it, so
    TRUNCATE under the projection lock, waiting for that write's table locks, would deadlock.
    """
    await conn.execute(
        "lock table orders, order_events, projector_rejects, projector_positions in exclusive mode"
    )


async def lock(conn: asyncpg.Connection, schema: str) -> None:
    """Take the projection lock of `schema` until the transaction ends."""
    await conn.execute("select pg_advisory_xact_lock($1, hashtext($2))", PROJECTION_LOCK, schema)


async def load_current(conn: asyncpg.Connection, order_ids: Iterable[str]) -> dict[str, Current]:
    rows = await conn.fetch(
        "select order_id, state, last_stream_seq from orders where order_id = any($1::text[])", list(order_ids)
    )
    return {
        r["order_id"]: Current(state=_state_decoder.decode(r["state"]), last_stream_seq=r["last_stream_seq"])
        for r in rows
    }


class Written(msgspec.Struct, frozen=True, kw_only=True):
    """What `write` did."""

    rejects: list[Reject]  # the projection's rejects not recorded before
    stale: set[str]  # orders not written: their rows moved after `current` was loaded


async def write(
    conn: asyncpg.Connection, schema: str, projection: Projection, current: Mapping[str, Current]
) -> Written:
    """Write `projection`, folded from `current`, under the projection lock of `schema`.

    Events, orders, rejects and the position go in one statement, so they commit
    together (in the caller's transaction if there is one). Orders whose rows are no
    longer as in `current` are left out with their events and rejects (see `_WRITE`): the
    caller loads and folds those again. Inside a transaction that took `lock` before
    loading `current` there are none.
    """
    orders = [order_record(order_id, row) for order_id, row in projection.orders.items()]
    bases = [current[order_id].last_stream_seq if order_id in current else 0 for order_id in projection.orders]
    rows = await conn.fetch(
        _WRITE,
        PROJECTION_LOCK,
        schema,
        POSITION,
        projection.max_stream_seq,
        *_columns([event_record(e) for e in projection.events], len(EVENT_COLUMNS)),
        *_columns(orders, len(ORDER_COLUMNS)),
        bases,
        *_columns([reject_record(r) for r in projection.rejects], len(REJECT_COLUMNS)),
    )
    recorded = {(r["order_id"], r["seq"]) for r in rows if r["seq"] is not None}
    return Written(
        rejects=[r for r in projection.rejects if (r.order_id, r.seq) in recorded],
        stale={r["order_id"] for r in rows if r["seq"] is None},
    )


async def write_locked(
    conn: asyncpg.Connection, schema: str, projection: Projection, current: Mapping[str, Current]
) -> list[Reject]:
    """`write` in a transaction that took `lock` before loading `current`; return the new rejects.

    No other writer can have moved a row meanwhile: one that did is an error.
    """
    written = await write(conn, schema, projection, current)
    if written.stale:
        raise RuntimeError(f"rows moved under the projection lock: {sorted(written.stale)}")
    return written.rejects


async def forget(conn: asyncpg.Connection, order_id: str) -> None:
    """Remove one order's rows (inside the caller's transaction), to write its fold anew."""
    for table in ("order_events", "projector_rejects", "orders"):
        await conn.execute(f"delete from {table} where order_id = $1", order_id)


async def reset(conn: asyncpg.Connection, *, keep_before: int = 0) -> None:
    """Empty the read model for a refold from stream position `keep_before` (inside the caller's transaction).

    Orders whose first event the stream no longer holds (retention) cannot be refolded:
    their rows and histories stay as they are, the read model being their only record.
    With nothing lost from the stream (`keep_before` 1 or less) everything goes.
    """
    if keep_before <= 1:
        await conn.execute("truncate orders, order_events, projector_rejects")
    else:
        await conn.execute(
            """
            create temp table rebuilt on commit drop as
                select order_id from order_events where seq = 1 and stream_seq >= $1
                union select order_id from orders o
                    where not exists (select 1 from order_events e where e.order_id = o.order_id and e.seq = 1)
            """,
            keep_before,
        )
        await conn.execute("delete from order_events e using rebuilt r where e.order_id = r.order_id")
        await conn.execute("delete from orders o using rebuilt r where o.order_id = r.order_id")
        await conn.execute("delete from projector_rejects where stream_seq >= $1", keep_before)
    await conn.execute("delete from projector_positions where name = $1", POSITION)


async def copy_events(conn: asyncpg.Connection, events: Sequence[EventRow]) -> None:
    await conn.copy_records_to_table("order_events", records=map(event_record, events), columns=EVENT_COLUMNS)


async def copy_orders(conn: asyncpg.Connection, orders: dict[str, Current]) -> None:
    records = (order_record(order_id, row) for order_id, row in orders.items())
    await conn.copy_records_to_table("orders", records=records, columns=ORDER_COLUMNS)


async def copy_rejects(conn: asyncpg.Connection, rejects: Sequence[Reject]) -> None:
    await conn.copy_records_to_table("projector_rejects", records=map(reject_record, rejects), columns=REJECT_COLUMNS)


async def set_position(conn: asyncpg.Connection, stream_seq: int) -> None:
    await conn.execute(_SET_POSITION, POSITION, stream_seq)


async def position(conn: asyncpg.Connection) -> int | None:
    return await conn.fetchval("select stream_seq from projector_positions where name = $1", POSITION)


def timestamp(ms: int) -> datetime:
    """Milliseconds since the epoch as an exact UTC datetime (no float rounding)."""
    return EPOCH + timedelta(milliseconds=ms)


def order_record(order_id: str, row: Current) -> tuple:
    s = row.state
    route = s.route
    # The confirmed (or landed-and-failed) signature, else the attempt in flight.
    signature = s.signature or (s.transaction.signature if s.transaction is not None else None)
    return (
        order_id,
        s.spec.client_order_id,
        s.spec.order_type,
        s.status,
        s.spec.token_in,
        s.spec.token_out,
        s.spec.amount_in,
        s.spec.slippage_bps,
        route.venue if route is not None else None,
        route.expected_out if route is not None else None,
        route.min_out if route is not None else None,
        s.amount_out,
        signature,
        s.attempts,
        s.failure_code,
        s.failure_reason,
        timestamp(s.created_at),
        timestamp(s.updated_at),
        s.seq,
        row.last_stream_seq,
        _encoder.encode(s).decode(),
        s.spec.account,
    )


def event_record(e: EventRow) -> tuple:
    return (e.order_id, e.seq, e.stream_seq, e.event_type, timestamp(e.occurred_at), e.payload.decode())


def reject_record(r: Reject) -> tuple:
    return (r.order_id, r.seq, r.stream_seq, r.event_type, r.reason)


def _columns(records: list[tuple], width: int) -> list[list]:
    return [list(col) for col in zip(*records)] if records else [[] for _ in range(width)]
