"""One fault scenario: a seeded load, a timeline of faults driven by the load's progress, the audit.

Faults are scheduled at seeded order numbers ("when order 87 has been sent"), so a run
is reproducible without any timer, and the timeline waits on the load, never on a clock.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.setup import DURABLES
from shared.topology import Topology
from tests.e2e.conftest import Stack, service_of
from tests.faults.harness import kill9, restart
from tests.faults.ledger import read_chain, read_log, read_model, read_model_differences, seq_gaps
from tests.faults.load import LoadDriver
from tests.faults.verdict import Figures, judge, resume_after
from tests.helpers import eventually

#: No order may stall longer than this beyond its normal time after any one fault.
STALL_LIMIT_S = 5.0
#: A clustered stream whose leader dies takes nats-server's Raft election to write again:
#: a follower waits 4-9 s (minElectionTimeoutDefault..maxElectionTimeoutDefault in its
#: server/raft.go, not configurable) before it campaigns. Losing a node may cost that, too.
ELECTION_MAX_S = 9.0
#: After the broker is back, every role appends again within this.
RESUME_LIMIT_S = 2.0


@dataclass(frozen=True)
class Profile:
    rate: float  # orders per second
    seconds: float  # of load
    settle_s: float = 45.0  # after the load, time the engine gets to finish every order
    outage_s: float = 2.0  # how long a broker or database stays away, in seconds of load

    @property
    def count(self) -> int:
        return math.ceil(self.rate * self.seconds)


class FaultRun:
    def __init__(self, scenario: str, stack: Stack, profile: Profile, seed: int) -> None:
        self.scenario = scenario
        self.stack = stack
        self.profile = profile
        self.rng = random.Random(f"{scenario}/{seed}")
        self.driver = LoadDriver(
            stack.gateway_urls, stack.api_key, rate=profile.rate, count=profile.count, seed=seed
        )
        self.faults: list[str] = []
        self.first_fault = math.inf
        self.outages: list[tuple[float, float]] = []  # (down, back) of a broker or a whole service
        self.back: float | None = None  # the broker came back: processing must resume
        self._recoveries: list[asyncio.Task] = []
        self._away: dict[str, float] = {}  # service -> when its last replica was killed

    def order_at(self, low: float, high: float) -> int:
        """A seeded order number between fractions `low` and `high` of the load."""
        return self.rng.randint(int(low * self.profile.count), int(high * self.profile.count))

    def orders_in(self, seconds: float) -> int:
        return max(1, round(seconds * self.profile.rate))

    def note(self, what: str, when: float) -> None:
        """Record a fault (or a recovery) that happened at `when` (wall clock)."""
        self.faults.append(f"{what} at {when - self.driver.started:.1f} s")
        if what.startswith(("kill", "stop")):
            self.first_fault = min(self.first_fault, when)

    def kill(self, name: str) -> None:
        """kill -9 service process `name` and have it restarted, as a supervisor would, meanwhile.

        While no replica of the service runs, the service is away as a broker can be: that
        time does not count as a stall.
        """
        service = service_of(name)
        when = kill9(self.stack, name)
        self.note(f"kill -9 {name}", when)
        if not any(service_of(other) == service for other in self.stack.processes):
            self._away.setdefault(service, when)

        async def recover() -> None:
            await restart(self.stack, name)
            back = time.time()
            self.note(f"{name} ready", back)
            if service in self._away:
                self.outages.append((self._away.pop(service), back))

        self._recoveries.append(asyncio.create_task(recover()))

    async def execute(self, timeline: Callable[[FaultRun], Awaitable[None]]) -> Figures:
        """Run the load with `timeline` beside it, let the engine finish, then audit."""
        load = asyncio.create_task(self.driver.run())
        try:
            await timeline(self)
            await asyncio.gather(*self._recoveries)
        except BaseException:
            load.cancel()
            for task in self._recoveries:
                task.cancel()
            raise
        await load
        return await self.audit()

    async def audit(self) -> Figures:
        stack = self.stack
        topology = Topology(namespace=stack.env["ENGINE_NAMESPACE"])
        accepted = {i.accepted.order_id for i in self.driver.intents if i.accepted}
        figures = Figures(
            scenario=self.scenario, orders=len(self.driver.intents), rate=self.profile.rate, faults=self.faults
        )
        nc = await stack.admin_nats()
        try:

            async def settled() -> bool:
                log = await read_log(nc, topology)
                return accepted <= log.keys() and all(o.state and o.state.terminal for o in log.values())

            try:
                await eventually(settled, timeout=self.profile.settle_s, interval=0.5, message="every order terminal")
            except AssertionError:
                pass  # the figures say which orders did not finish
            chain = await self._chain_settled(nc, topology)
            log = await read_log(nc, topology)
            judge(
                figures,
                self.driver.intents,
                log,
                chain,
                first_fault=self.first_fault,
                outages=self.outages,
                now=time.time(),
            )
            figures.seq_gaps = seq_gaps(log)
            figures.load_average = os.getloadavg()[0]
            if self.back is not None:
                figures.resume_by_role = resume_after(log, self.back)
                delays = figures.resume_by_role.values()
                figures.resume_s = None if None in delays else max(delays)
            figures.read_model, figures.read_model_caught_up_s = await self._read_model(log)
            figures.consumers = await consumers(nc, topology)
            figures.logs = str(stack.logs)
        finally:
            await nc.close()
        return figures

    async def _chain_settled(self, nc, topology: Topology) -> dict:
        """The chain's ledger once no accepted transaction is still on its way to landing."""

        async def landed() -> dict | bool:
            chain = await read_chain(nc, topology, self.stack.env)
            return chain if all(tx.state != "pending" for txs in chain.values() for tx in txs) else False

        try:
            return await eventually(landed, timeout=10, interval=0.2, message="chain settled")
        except AssertionError:
            return await read_chain(nc, topology, self.stack.env)

    async def _read_model(self, log) -> tuple[list[str], float | None]:
        stack = self.stack
        last: list[str] = []

        async def equal() -> bool:
            nonlocal last
            try:
                model = await read_model(stack.database_url, stack.schema)
            except (OSError, Exception) as error:  # noqa: BLE001 - a database still coming back
                last = [f"read model unreadable: {error!r}"]
                return False
            last = read_model_differences(log, model)
            return not last

        try:
            await eventually(equal, timeout=30, interval=0.5, message="read model equal to the log")
        except AssertionError:
            return last, None
        return [], time.time() - self.driver.finished


async def consumers(nc, topology: Topology) -> dict[str, str]:
    """What each durable consumer of the order stream still holds: where a stuck order waits."""
    js = nc.jetstream()
    out = {}
    for durable in DURABLES:
        info = await js.consumer_info(topology.orders_stream, topology.consumer(durable))
        out[durable] = (
            f"pending {info.num_pending}, unacked {info.num_ack_pending}, redelivered {info.num_redelivered}"
        )
    return out
