"""Fault scenarios against real processes: two replicas of each service under a seeded load.

`pytest` runs the short version (a smaller load, the scenarios that fit in about two
minutes); `make test-faults` (`pytest tests/faults --faults=full`) runs every scenario
at full size. Each scenario's figures are printed in a "fault scenarios" section at the
end of the run and written to `faults-summary.jsonl` in pytest's base temporary directory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, start_stack, stop_stack
from tests.faults.harness import Postgres
from tests.faults.run import Profile
from tests.faults.verdict import Figures
from tools import pgroles
from tools.devservers import DevServerError

SUMMARY = pytest.StashKey[list[str]]()
SEED = 7

PROFILES = {
    "short": Profile(rate=8, seconds=14, outage_s=2),
    "full": Profile(rate=15, seconds=40, outage_s=3),
}
#: The PostgreSQL outage is about 20 s in both versions, so its load runs longer.
POSTGRES_OUTAGE_S = 20


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults",
        choices=("short", "full"),
        default="short",
        help="fault scenarios: short (part of the default run) or full (make test-faults)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults_full: a fault scenario run only with --faults=full")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--faults", default="short") == "full":
        return
    deselected = [item for item in items if item.get_closest_marker("faults_full")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("fault scenarios")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def profile(request: pytest.FixtureRequest) -> Profile:
    return PROFILES[request.config.getoption("--faults", default="short")]


@pytest.fixture
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Figures], None]:
    """Record a scenario's figures for the summary (whatever the outcome of its asserts)."""

    def record(figures: Figures) -> None:
        request.config.stash.setdefault(SUMMARY, []).append(figures.line())
        with (tmp_path_factory.getbasetemp() / "faults-summary.jsonl").open("a") as out:
            out.write(figures.to_json() + "\n")

    return record


@pytest.fixture
async def replicated_stack(database_url, stack_credentials, tmp_path) -> AsyncIterator[Stack]:
    """Two replicas of each service on the session's PostgreSQL and a nats-server of its own."""
    stack = await start_stack(database_url, stack_credentials, tmp_path, replicas=2)
    try:
        yield stack
    finally:
        await stop_stack(stack)


@pytest.fixture
def private_postgres(stack_credentials) -> Iterator[Postgres]:
    """A PostgreSQL of this test's own (it will be stopped), with the engine's roles."""
    base = Path(tempfile.mkdtemp(prefix="engine-faults-pg-"))
    try:
        try:
            server = Postgres(base / "pg")
        except DevServerError as error:
            pytest.fail(str(error), pytrace=False)
        try:
            yield server
        finally:
            server.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def postgres_stack(private_postgres, stack_credentials, tmp_path) -> AsyncIterator[Stack]:
    """Two replicas of each service whose read model lives in `private_postgres`."""
    await pgroles.provision(
        private_postgres.url,
        reader_password=stack_credentials.reader_password,
        writer_password=stack_credentials.writer_password,
        schemas=(),
    )
    stack = await start_stack(private_postgres.url, stack_credentials, tmp_path, replicas=2)
    try:
        yield stack
    finally:
        await stop_stack(stack)
