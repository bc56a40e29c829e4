"""Each service's NATS user, on a real nats-server run with the generated configuration.

The server is configured from `shared.natsauth` for this module's namespace, as `make run`
and the e2e stacks configure theirs; the set-up step runs as admin. Each user is shown
doing what its job needs with the engine's own code, and refused everything else the
table leaves out: appends (projector), stream and durable-consumer changes (every
service), other users' inboxes and subjects outside its job.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client

from services.router.book import LimitBook
from services.router.resting import BookFeed
from shared import events as ev
from services.projector.replay import replay
from shared.chain import JetStreamChainStore
from shared.clock import SystemClock
from shared.consumer import Consumer
from shared.durables import order_spec
from shared.eventlog import EVENT_TYPE_HEADER, EventLog
from shared.launchlog import LaunchRegistry
from shared import resume
from shared.natsauth import ADMIN, SERVICES, USERS, authorization, inbox_prefix, permissions
from shared.retention import DEFAULT_MAX_AGE_DAYS, DEFAULT_MAX_BYTES, stream_usage
from shared.topology import Topology
from tests.helpers import eventually
from tests.kit import SPEC, make
from tests.unit.test_projector_fold import order_story
from tools import credentials, deadletter
from tools.devservers import ServerProcess, start_nats
from tools.setup import provision_nats


@dataclass
class Server:
    process: ServerProcess
    topology: Topology
    passwords: dict[str, str]
    clients: list[Client] = field(default_factory=list)


@dataclass
class User:
    nc: Client
    errors: list[str]

    async def refused(self, subject: str, kind: str = "publish") -> None:
        """The server reported a permissions violation for `subject`."""
        needle = f'permissions violation for {"publish" if kind == "publish" else "subscription"} to "{subject.lower()}"'
        await eventually(lambda: any(needle in e for e in self.errors), timeout=5, message=f"refusal of {subject}")

    async def refused_request(self, subject: str, body: dict | None = None) -> None:
        """A JetStream API request on `subject` is refused before it reaches JetStream."""
        await self.nc.publish(subject, json.dumps(body or {}).encode(), reply=self.nc.new_inbox())
        await self.refused(subject)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    namespace = "p" + secrets.token_hex(3)
    topology = Topology(namespace=namespace)
    passwords = credentials.generate().nats
    base = Path(tempfile.mkdtemp(prefix="engine-test-auth-"))
    try:
        with start_nats(store_dir=base, config=authorization(topology, passwords)) as process:
            yield Server(process, topology, passwords)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
async def provisioned(server: Server) -> Server:
    admin = await nats.connect(server.process.url, user=ADMIN, password=server.passwords[ADMIN])
    await provision_nats(admin.jetstream(), server.topology)
    await admin.close()
    return server


@pytest.fixture
async def connect(provisioned: Server) -> AsyncIterator:
    opened: list[Client] = []

    async def as_user(user: str) -> User:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        nc = await nats.connect(
            provisioned.process.url,
            user=user,
            password=provisioned.passwords[user],
            inbox_prefix=inbox_prefix(user),
            error_cb=on_error,
            allow_reconnect=False,
        )
        opened.append(nc)
        return User(nc, errors)

    yield as_user
    for nc in opened:
        await nc.close()


async def test_a_wrong_password_or_no_user_is_refused(provisioned: Server) -> None:
    for user, password in (("gateway", "wrong"), (None, None)):
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(
                provisioned.process.url, user=user, password=password, allow_reconnect=False, max_reconnect_attempts=0
            )


@pytest.mark.parametrize("user", SERVICES)
async def test_no_service_may_create_change_or_delete_a_stream_or_a_durable_consumer(connect, provisioned, user) -> None:
    t = provisioned.topology
    client = await connect(user)
    orders = t.orders_stream
    durable = {"stream_name": orders, "config": {"durable_name": "x", "ack_policy": "explicit"}}
    for subject in (
        f"$JS.API.STREAM.CREATE.{t.orders_stream}_COPY",
        f"$JS.API.STREAM.UPDATE.{orders}",
        f"$JS.API.STREAM.DELETE.{orders}",
        f"$JS.API.STREAM.PURGE.{orders}",
        f"$JS.API.STREAM.MSG.DELETE.{orders}",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{orders}.x",
        f"$JS.API.CONSUMER.CREATE.{orders}.x",
        f"$JS.API.CONSUMER.CREATE.{orders}.x.{t.orders_subjects}",
        f"$JS.API.CONSUMER.DELETE.{orders}.{user if user != 'gateway' else 'router'}",
        f"$KV.{t.chain_bucket}.x" if user != "executor" else f"$JS.API.STREAM.DELETE.KV_{t.chain_bucket}",
    ):
        await client.refused_request(subject, durable)
    admin = await nats.connect(provisioned.process.url, user=ADMIN, password=provisioned.passwords[ADMIN])
    try:
        names = await admin.jetstream().streams_info()
        assert f"{orders}_COPY" not in {s.config.name for s in names}
        consumers = {c.name for c in await admin.jetstream().consumers_info(orders)}
        assert "x" not in consumers and {"router", "executor", "projector"} <= consumers
    finally:
        await admin.close()


@pytest.mark.parametrize("user", [u for u in SERVICES if u != "gateway"])
async def test_the_bare_create_subject_a_service_may_use_makes_ephemeral_consumers_only(connect, provisioned, user) -> None:
    t = provisioned.topology
    client = await connect(user)
    stream = t.orders_stream if user != "executor" else t.launches()[0]
    request = {"stream_name": stream, "config": {"durable_name": "sneaky", "ack_policy": "explicit"}}
    reply = await client.nc.request(f"$JS.API.CONSUMER.CREATE.{stream}", json.dumps(request).encode(), timeout=5)
    assert json.loads(reply.data)["error"]["err_code"] == 10020  # durable name on the ephemeral endpoint


@pytest.mark.parametrize("user", SERVICES)
async def test_a_service_may_not_read_another_users_replies_nor_subjects_outside_its_job(connect, provisioned, user) -> None:
    client = await connect(user)
    other = next(u for u in USERS if u != user)
    t = provisioned.topology
    outside = [f"{inbox_prefix(other)}.>", "_INBOX.>", ">", f"{t.orders_prefix}.>"]
    if user != "gateway":
        outside.append(f"{t.live_prefix}.>")
    for subject in outside:
        await client.nc.subscribe(subject)
        await client.refused(subject, "subscribe")


async def test_the_projector_reads_the_log_and_may_not_append_to_it(connect, provisioned) -> None:
    t = provisioned.topology
    admin = await nats.connect(provisioned.process.url, user=ADMIN, password=provisioned.passwords[ADMIN])
    story = order_story("o-perm", "confirmed")
    log = EventLog(admin, admin.jetstream(), t)
    last = 0
    for event in story:
        last = (await log.append(event, expected_stream_seq=last)).stream_seq
    await admin.close()

    projector = await connect("projector")
    js = projector.nc.jetstream()
    pulled: list = []

    async def take(items, msgs) -> None:
        pulled.extend(items)

    stop = asyncio.Event()
    task = asyncio.create_task(Consumer(js, t.orders_stream, order_spec(t, "projector"), take, batch=100).run(stop))
    try:
        await eventually(lambda: len(pulled) == len(story), message="pulled")
    finally:
        stop.set()
        await task
    replayed = [raw async for chunk in replay(js, t.orders_stream, t.orders_subjects, last_seq=last) for raw in chunk]
    assert len(replayed) == len(story)
    assert [e.event.seq for e in await EventLog(projector.nc, js, t).read("o-perm")] == [e.seq for e in story]

    with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.NoRespondersError)):
        await EventLog(projector.nc, js, t, timeout=0.5).append(
            order_story("o-forged", "confirmed")[0], expected_stream_seq=0
        )
    await projector.refused(t.order_subject("o-forged", 1, "OrderAccepted"))
    await projector.refused_request(f"{t.quotes_prefix}.SOL-USDC.raydium-cpmm")


async def test_gateway_router_and_executor_append_and_read_what_their_job_needs(connect, provisioned) -> None:
    t = provisioned.topology
    gateway, router, executor = await connect("gateway"), await connect("router"), await connect("executor")
    seen: list[bytes] = []

    async def record(msg) -> None:
        seen.append(msg.data)

    await gateway.nc.subscribe(t.live_subject("o-jobs"), cb=record)
    await gateway.nc.subscribe(f"{t.quotes_prefix}.>")
    story = order_story("o-jobs", "confirmed")
    last = 0
    for client, event in zip([gateway, router, router, executor, executor, executor], story):
        last = (await EventLog(client.nc, client.nc.jetstream(), t).append(event, expected_stream_seq=last)).stream_seq
    await eventually(lambda: len(seen) == len(story), message="live events reach the gateway")
    await gateway.refused_request(t.order_subject("o-jobs", len(story) + 1, "OrderRouted"))  # not a client's step
    gateway.errors.clear()
    await router.nc.publish(t.quote_subject("SOL-USDC", "raydium-cpmm"), b"{}")
    await gateway.nc.flush()
    msg = await eventually(
        lambda: _last_quote(gateway.nc, t), message="the gateway reads the last quote"
    )
    assert msg.data == b"{}"

    store = await JetStreamChainStore.open(executor.nc.jetstream(), t.chain_bucket)
    assert await store.create("tx.a", b"1") and await store.get("tx.a") == b"1"
    async with LaunchRegistry(executor.nc.jetstream(), t):
        pass
    for client in (gateway, router, executor):
        assert not client.errors, client.errors


async def _last_quote(nc: Client, t: Topology):
    try:
        return await nc.jetstream().get_last_msg(t.quotes_stream, t.quote_subject("SOL-USDC", "raydium-cpmm"), direct=True)
    except Exception:
        return None


def test_every_service_user_may_subscribe_to_its_own_inbox_and_only_the_projector_may_not_append() -> None:
    table = permissions(Topology())
    for user in SERVICES:
        assert f"{inbox_prefix(user)}.>" in table[user].subscribe
        assert not any(s in (">", "$JS.API.>", "_INBOX.>") for s in table[user].publish + table[user].subscribe)
    assert [u for u in SERVICES if "orders.*.*.*" in table[u].publish] == ["router", "executor"]
    assert [s for s in table["gateway"].publish if s.startswith("orders.")] == [
        "orders.*.*.OrderAccepted", "orders.*.*.OrderCancelled"]
    assert all(not s.startswith(("$JS.API.STREAM.CREATE", "$JS.API.STREAM.DELETE", "$JS.API.STREAM.UPDATE",
                                 "$JS.API.CONSUMER.DELETE", "$JS.API.CONSUMER.DURABLE"))
               for p in table.values() for s in p.publish)


async def test_the_gateway_reads_api_keys_and_counts_requests_and_nothing_more(connect, provisioned) -> None:
    # The accounts bucket and the rate-limit counter stream, as the set-up step made them.
    t = provisioned.topology
    admin = await nats.connect(provisioned.process.url, user=ADMIN, password=provisioned.passwords[ADMIN])
    ajs = admin.jetstream()
    accounts = await ajs.key_value(t.accounts_bucket)
    await accounts.put("keys.k1", b"record")
    gateway = await connect("gateway")
    js = gateway.nc.jetstream()
    kv = await js.key_value(t.accounts_bucket)
    assert (await kv.get("keys.k1")).value == b"record"
    await accounts.put("keys.k1", b"revoked")
    assert (await kv.get("keys.k1")).value == b"revoked"
    subject = t.ratelimit_subject("k1", "orders", 1)
    for _ in range(2):
        # No `stream=`: nats-server 2.15 refuses Nats-Incr with Nats-Expected-Stream (10171).
        ack = await js.publish(subject, b"", headers={"Nats-Incr": "1"})
        assert ack.stream == t.ratelimit_stream
    assert ack.val == "2"
    await gateway.refused_request(f"$KV.{t.accounts_bucket}.keys.forged")  # keys are the admin's to write
    await gateway.refused_request(f"$JS.API.CONSUMER.CREATE.KV_{t.accounts_bucket}")  # no consumers at all
    assert all("forged" in e or "consumer.create" in e for e in gateway.errors), gateway.errors
    await admin.close()




async def test_an_event_a_service_gives_up_on_is_parked_and_the_service_may_not_touch_the_parked_ones(
    connect, provisioned
) -> None:
    t = provisioned.topology
    admin = await nats.connect(provisioned.process.url, user=ADMIN, password=provisioned.passwords[ADMIN])
    ajs = admin.jetstream()
    ack = await ajs.publish(t.order_subject("o-unreadable", 3, "OrderRouted"), b"not an event",
                            headers={EVENT_TYPE_HEADER: "OrderRouted"})
    executor = await connect("executor")
    stop = asyncio.Event()

    async def ignore(event, msg) -> None:
        pass

    spec = order_spec(t, "executor")
    task = asyncio.create_task(Consumer(executor.nc.jetstream(), t.orders_stream, spec, ignore).run(stop))
    try:
        async def parked() -> list[int]:
            return [r.stream_seq for r in await deadletter.parked(ajs, t) if r.consumer == "executor"]

        assert await eventually(parked, message="the undecodable event parked") == [ack.seq]
    finally:
        stop.set()
        await task
        await admin.close()
    assert not executor.errors, executor.errors  # terminating is acking
    await executor.refused_request(f"$JS.API.STREAM.INFO.{t.deadletter_stream}")
    await executor.refused_request(f"$JS.API.STREAM.MSG.GET.{t.deadletter_stream}", {"seq": 1})


async def test_the_projector_nudges_router_and_executor_and_each_service_takes_only_its_own_nudges(
    connect, provisioned
) -> None:
    t = provisioned.topology
    projector = await connect("projector")
    pjs = projector.nc.jetstream()
    for role in ("router", "executor"):
        assert await resume.nudge(pjs, t, role, f"o-{role}", seq=2, status="routing")
    await projector.refused_request(t.resume_subject("projector", "o-self"))  # only the admin nudges it
    for role in ("router", "executor"):
        client = await connect(role)
        nudged: list[str] = []

        async def take(nudge, msg) -> None:
            nudged.append(nudge.order_id)

        stop = asyncio.Event()
        task = asyncio.create_task(resume.consumer(client.nc.jetstream(), t, role, take).run(stop))
        try:
            await eventually(lambda: nudged, message=f"{role} pulls its nudge")
        finally:
            stop.set()
            await task
        assert nudged == [f"o-{role}"]
        assert not client.errors, client.errors
        other = "executor" if role == "router" else "router"
        await client.refused_request(f"$JS.API.CONSUMER.MSG.NEXT.{t.resume_stream}.{other}", {"batch": 1})
        await client.refused_request(t.resume_subject(role, "o-forged"))
    gateway = await connect("gateway")
    await gateway.refused_request(t.resume_subject("router", "o-forged"))


async def test_the_router_keeps_its_book_snapshots_and_only_the_router_may_write_them(connect, provisioned) -> None:
    t = provisioned.topology
    router = await connect("router")
    appender = EventLog(router.nc, router.nc.jetstream(), t)
    last = 0
    spec = msgspec.structs.replace(SPEC, order_type="limit", time_in_force="GTC", min_out=10**12)
    for event in (make(ev.OrderAccepted, "o-snap", 1, order=spec), make(ev.OrderOpened, "o-snap", 2)):
        last = (await appender.append(event, expected_stream_seq=last)).stream_seq
    first = BookFeed(router.nc.jetstream(), t, LimitBook(), SystemClock(), snapshot_every_s=60)
    await first.start()
    await asyncio.wait_for(first.caught_up.wait(), 10)
    assert await first.save() == last
    assert await first.save() == last  # replacing the snapshot purges the chunks it replaces
    await first.stop()
    second = BookFeed(router.nc.jetstream(), t, LimitBook(), SystemClock(), snapshot_every_s=60)
    await second.start()
    assert second.caught_up.is_set() and second.fold.snapshot("") == first.fold.snapshot("")
    await second.stop()
    assert "o-snap" in second.book and not router.errors, router.errors
    others = await connect("gateway"), await connect("executor"), await connect("projector")
    for user in others:
        await user.nc.publish(f"$O.{t.book_bucket}.M.x", b"{}")
        await user.refused(f"$O.{t.book_bucket}.M.x")


async def test_the_projector_samples_the_size_and_limits_of_the_order_stream(connect, provisioned) -> None:
    projector = await connect("projector")
    reply = await projector.nc.request(f"$JS.API.STREAM.INFO.{provisioned.topology.orders_stream}", b"", timeout=5)
    usage = stream_usage(json.loads(reply.data), time.time())
    assert usage["max_bytes"] == DEFAULT_MAX_BYTES and usage["max_age"] == DEFAULT_MAX_AGE_DAYS * 86_400
    assert not projector.errors
