"""The gateway's read model when PostgreSQL is missing, hung or not migrated: each read
answers within its budget, and after a failure the breaker answers at once until the
retry time, when one read tries PostgreSQL again."""

from __future__ import annotations

import asyncio
import time

from services.gateway.reads import ReadModel, ReadModelUnavailable, open_pool
from shared import metrics
from tests.helpers import eventually, free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SilentServer:
    """Accepts TCP connections and never answers: a PostgreSQL that hangs."""

    def __init__(self) -> None:
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> int:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self._writers.append(writer)
            await reader.read()

        self._server = await asyncio.start_server(hold, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()


async def read_model(url: str, schema: str = "public", **options) -> ReadModel:
    timeout = options.pop("timeout_s", 0.3)
    pool = await open_pool(url, schema, size=2, connect_timeout=timeout)
    return ReadModel(pool, timeout_s=timeout, **options)


async def timed(read) -> tuple[BaseException | None, float]:
    started = time.perf_counter()
    try:
        await read
    except ReadModelUnavailable as exc:
        return exc, time.perf_counter() - started
    return None, time.perf_counter() - started


def gauge() -> float:
    return metrics.READ_MODEL_AVAILABLE.labels(metrics.service())._value.get()


async def test_a_database_that_is_not_there_is_reported_at_once_and_the_pool_opens_anyway() -> None:
    reads = await read_model(f"postgresql://postgres@127.0.0.1:{free_port()}/engine", retry_s=5.0)
    try:
        error, elapsed = await timed(reads.orders(account="a", status=None, limit=5, cursor=None))
        assert isinstance(error, ReadModelUnavailable) and elapsed < 0.3
        assert 1 <= error.retry_after <= 5.0
        assert not reads.available and gauge() == 0
        assert await reads.ping() is False
    finally:
        await reads.close()


async def test_a_hung_database_costs_one_budget_then_the_breaker_answers_until_the_retry_time() -> None:
    clock = Clock()
    async with SilentServer() as port:
        reads = await read_model(f"postgresql://postgres@127.0.0.1:{port}/engine", retry_s=2.0, clock=clock)
        try:
            error, elapsed = await timed(reads.order("o-1"))
            assert isinstance(error, ReadModelUnavailable) and 0.25 <= elapsed < 1.0

            # Open: no connection is tried, nothing is waited for.
            for _ in range(5):
                error, elapsed = await timed(reads.events("o-1"))
                assert isinstance(error, ReadModelUnavailable) and elapsed < 0.05

            # After the retry time one read tries again (and waits out its budget once more).
            clock.now += 2.0
            error, elapsed = await timed(reads.order("o-1"))
            assert isinstance(error, ReadModelUnavailable) and elapsed >= 0.25
        finally:
            await reads.close()


async def test_after_the_retry_time_one_read_tries_the_database_and_the_others_do_not() -> None:
    clock = Clock()
    silent = SilentServer()
    async with silent as port:
        reads = await read_model(f"postgresql://postgres@127.0.0.1:{port}/engine", retry_s=2.0, clock=clock)
        try:
            await timed(reads.order("o-1"))
            await eventually_accepted(silent, 1)
            await asyncio.gather(*(timed(reads.order("o-1")) for _ in range(10)))
            clock.now += 2.0
            # Many reads at the retry time: only one of them tries the database.
            results = await asyncio.gather(*(timed(reads.order("o-1")) for _ in range(10)))
            assert all(isinstance(error, ReadModelUnavailable) for error, _ in results)
            assert sum(elapsed >= 0.25 for _, elapsed in results) == 1
            await eventually_accepted(silent, 2)
        finally:
            await reads.close()
        assert silent.accepted == 2


async def eventually_accepted(server: SilentServer, count: int) -> None:
    await eventually(lambda: server.accepted == count, timeout=2, message=f"{count} connections accepted")


async def test_a_read_model_not_yet_migrated_is_unavailable_not_an_error(database_url: str, pg_schema: str) -> None:
    reads = await read_model(database_url, pg_schema, retry_s=2.0)
    try:
        assert await reads.ping() is True and reads.available and gauge() == 1
        error, _ = await timed(reads.orders(account="a", status=None, limit=5, cursor=None))
        assert isinstance(error, ReadModelUnavailable)  # no table yet: the projector has not run here
        assert not reads.available
    finally:
        await reads.close()
