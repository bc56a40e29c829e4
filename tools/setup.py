"""The admin set-up step: ``python -m tools.setup``.

Creates (or updates) what the services bind to and may not create themselves: the
streams (`shared.eventlog.ensure_streams`), the durable consumers of the order and resume streams and
the chain's key-value bucket, as the NATS admin user; and, given an admin
``SETUP_DATABASE_URL``, the PostgreSQL roles of the read model (`tools.pgroles`). Safe to
run again at any time. `make run` and the test fixtures run it before the services, a
Kubernetes Job and a one-shot compose service run it in a cluster.

Settings (environment): ``NATS_URL``, ``NATS_USER``/``NATS_PASSWORD`` (the admin user),
``ENGINE_NAMESPACE``, ``STREAM_REPLICAS``, ``ORDERS_MAX_AGE_DAYS`` and ``ORDERS_MAX_BYTES``
(limits of the order stream), ``CONSUMER_ACK_WAIT`` and ``CONSUMER_MAX_DELIVER`` (of the order
stream's durable consumers); for PostgreSQL ``SETUP_DATABASE_URL`` (a superuser or a role with
CREATEROLE) with ``READER_DATABASE_PASSWORD`` and ``WRITER_DATABASE_PASSWORD``. Exit status 0
when done, 1 when a server refused or could not be reached.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import nats
from nats.js import JetStreamContext

from shared import retention
from shared.chain.jetstream_store import ensure_bucket
from shared.durables import ACK_WAIT, MAX_DELIVER, ensure_consumer, order_spec
from shared.eventlog import ensure_streams
from shared.runtime import nats_servers
from shared.settings import Common, SettingsError, load
from shared import resume
from shared.setup import DURABLES
from shared.topology import Topology
from tools import pgroles

log = logging.getLogger("setup")


class SetupSettings(Common, frozen=True, kw_only=True):
    #: Admin connection to PostgreSQL; empty: leave the roles alone.
    setup_database_url: str = ""
    reader_database_password: str = ""
    writer_database_password: str = ""
    #: Limits of the order stream (`shared.retention`), applied to an existing stream too.
    orders_max_age_days: float = retention.DEFAULT_MAX_AGE_DAYS
    orders_max_bytes: int = retention.DEFAULT_MAX_BYTES
    #: Seconds before a message a consumer took but did not ack goes to another replica.
    consumer_ack_wait: float = ACK_WAIT
    #: Deliveries of one event before it is parked in the dead-letter stream.
    consumer_max_deliver: int = MAX_DELIVER


async def provision_nats(
    js: JetStreamContext,
    topology: Topology,
    *,
    replicas: int = 1,
    ack_wait: float = ACK_WAIT,
    max_deliver: int = MAX_DELIVER,
    max_age_days: float = retention.DEFAULT_MAX_AGE_DAYS,
    max_bytes: int = retention.DEFAULT_MAX_BYTES,
) -> None:
    """Streams, the durable consumers of orders and nudges, and the chain bucket (idempotent)."""
    await ensure_streams(js, topology, replicas=replicas, max_age_days=max_age_days, max_bytes=max_bytes)
    for name in DURABLES:
        spec = order_spec(topology, name, ack_wait=ack_wait, max_deliver=max_deliver)
        await ensure_consumer(js, topology.orders_stream, spec)
    for role in resume.ROLES:  # one per role, each filtered to its own nudges
        await ensure_consumer(js, topology.resume_stream, resume.consumer_spec(topology, role))
    await ensure_bucket(js, topology.chain_bucket, replicas=replicas)


async def run(settings: SetupSettings) -> None:
    topology = Topology(namespace=settings.engine_namespace)
    nc = await nats.connect(
        nats_servers(settings.nats_url),
        name="setup",
        user=settings.nats_user or None,
        password=settings.nats_password or None,
        connect_timeout=5,
        max_reconnect_attempts=2,
    )
    try:
        await provision_nats(
            nc.jetstream(), topology, replicas=settings.stream_replicas,
            ack_wait=settings.consumer_ack_wait, max_deliver=settings.consumer_max_deliver,
            max_age_days=settings.orders_max_age_days, max_bytes=settings.orders_max_bytes,
        )
    finally:
        await nc.close()
    log.info("NATS streams, consumers and buckets are in place")
    if settings.setup_database_url:
        await pgroles.provision(
            settings.setup_database_url,
            reader_password=settings.reader_database_password,
            writer_password=settings.writer_database_password,
        )
        log.info("PostgreSQL roles %s and %s are in place", pgroles.READER, pgroles.WRITER)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s setup %(message)s")
    try:
        settings = load(SetupSettings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(settings))
    except Exception as exc:  # one line for the operator, not a traceback
        print(f"error: set-up failed: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

