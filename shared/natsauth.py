"""NATS users and what each may publish and subscribe: the one permission table.

Every service connects as its own user (`NATS_USER`, `NATS_PASSWORD`) with an inbox
prefix of its own (`_INBOX.<user>`), so it can subscribe to its own replies and to no one
else's. The `admin` user alone may create, change or delete streams, consumers and
buckets (`python -m tools.setup`) and has no restriction; tools use it too.

How the JetStream traffic a service needs travels (nats-py 2.16, nats-server 2.15):
- API requests (`$JS.API.<...>`), publish acks, direct-get replies, pull-request
  deliveries and push-consumer deliveries all come back on the requester's inbox.
- Pull consumers: publish `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`, ack (nak,
  keep in progress, terminate) by publishing to `$JS.ACK.<stream>.<durable>.>`. The
  server's advisory of a terminated or undeliverable event goes to the dead-letter
  stream without any user's permission; only the admin reads it (`tools.deadletter`).
- Ordered consumers (the router's book, the launch registry, the projector's rebuild,
  key-value watches, object reads) are ephemeral push consumers created on the bare
  `$JS.API.CONSUMER.CREATE.<stream>`, where the server refuses a durable name; flow
  control is answered on `$JS.FC.<stream>.>`; a follower (`shared.follow`) and a key-value
  watch also ask `$JS.API.CONSUMER.INFO.<stream>.<its consumer>` for the backlog (an
  ordered consumer's name is the server's choice). Their deliver subject is the creator's
  inbox, and the server refuses one that its own stream would capture (a cycle).
- Direct gets: `$JS.API.DIRECT.GET.<stream>` (batched, by subject in the body) and
  `$JS.API.DIRECT.GET.<stream>.<subject>` (last message of a subject). Key-value gets
  use the latter when the bucket allows direct gets, else `$JS.API.STREAM.MSG.GET.<stream>`.

The order log keeps each event on its own subject, `orders.<orderId>.<seq>.<EventType>`,
so a permission can name event types: the gateway may append only what a client asks
for (`OrderAccepted`, `OrderCancelled`), router and executor any event
(`orders.*.*.*`: the state machine, not a permission, decides which step may follow
which), and the projector may not publish there at all. It may publish resume nudges to router and executor (its reconciler); each
service pulls only from its own durable of the resume stream, filtered to its role.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import msgspec

from shared.topology import Topology

ADMIN = "admin"
SERVICES = ("gateway", "router", "executor", "projector")
USERS = (ADMIN, *SERVICES)


class Permissions(msgspec.Struct, frozen=True, kw_only=True):
    """Subjects a user may publish to and subscribe to (anything else is refused)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def inbox_prefix(user: str) -> str:
    """The inbox prefix a service connects with; its user may subscribe only below it."""
    return f"_INBOX.{user}"


def _api(*parts: str) -> str:
    return "$JS.API." + ".".join(parts)


def _pull(stream: str, durable: str) -> tuple[str, ...]:
    """Pull from, ack on and watch the backlog of an existing durable consumer."""
    return (
        _api("CONSUMER.MSG.NEXT", stream, durable),
        f"$JS.ACK.{stream}.{durable}.>",
        _api("CONSUMER.INFO", stream, durable),
    )


def _follow(stream: str) -> tuple[str, ...]:
    """Read a stream through ordered (ephemeral, non-durable) consumers, asking one's backlog at start."""
    return (_api("STREAM.INFO", stream), _api("CONSUMER.CREATE", stream), f"$JS.FC.{stream}.>",
            _api("CONSUMER.INFO", stream, "*"))


def _direct(stream: str) -> tuple[str, ...]:
    """Direct gets: batched by subject, and the last message of a subject."""
    return (_api("DIRECT.GET", stream), _api("DIRECT.GET", stream, ">"))


def _bucket(bucket: str, *, write: bool) -> tuple[str, ...]:
    """Bind to an existing key-value bucket, get keys (direct or not), optionally put."""
    stream = f"KV_{bucket}"
    grants = (_api("STREAM.INFO", stream), _api("STREAM.MSG.GET", stream), *_direct(stream)[1:])
    return (*grants, f"$KV.{bucket}.>") if write else grants


def _objects(bucket: str) -> tuple[str, ...]:
    """Put and get objects of an existing object store: chunks and metadata, the purge of
    replaced chunks, and reading an object back through an ordered consumer (nats-py finds
    the stream of the chunks' subject by asking for stream names)."""
    stream = f"OBJ_{bucket}"
    return (
        f"$O.{bucket}.C.>",
        f"$O.{bucket}.M.>",
        _api("STREAM.PURGE", stream),
        _api("STREAM.MSG.GET", stream),
        _api("STREAM.NAMES"),
        *_follow(stream),
    )


def permissions(topology: Topology) -> dict[str, Permissions]:
    """What each service user may do; `admin` is absent because it is unrestricted."""
    t = topology
    orders, quotes = t.orders_stream, t.quotes_stream
    pools, pool_subjects = t.launches()
    ratelimit = t.ratelimit_stream
    resume = t.resume_stream
    append = t.orders_subjects
    client_steps = t.event_filter("OrderAccepted", "OrderCancelled")  # what the gateway appends
    log_reader = (*_direct(orders)[:1], _api("STREAM.INFO", orders))
    table = {
        "gateway": Permissions(
            publish=(
                *client_steps,
                *log_reader,
                *_direct(quotes)[1:],
                _api("STREAM.INFO", quotes),
                *_bucket(t.accounts_bucket, write=False),  # key records, re-read by get
                t._subject("ratelimit.>"),  # counter increments (Nats-Incr), acked
                _api("STREAM.INFO", ratelimit),
            ),
            subscribe=(f"{t.live_prefix}.>", f"{t.quotes_prefix}.>"),
        ),
        "router": Permissions(
            publish=(
                append,
                *log_reader,
                *_pull(orders, t.consumer("router")),
                *_pull(resume, t.consumer("router")),  # its own nudges only (the durable's filter)
                *_follow(orders),  # the resting book
                *_objects(t.book_bucket),  # its snapshots
                f"{t.quotes_prefix}.>",
                _api("STREAM.INFO", quotes),
                pool_subjects,  # the launch schedule
                *_follow(pools),
                *_direct(pools)[1:],
            ),
            subscribe=(),
        ),
        "executor": Permissions(
            publish=(
                append,
                *log_reader,
                *_pull(orders, t.consumer("executor")),
                *_pull(resume, t.consumer("executor")),
                *_bucket(t.chain_bucket, write=True),
                *_follow(pools),
                *_direct(pools)[1:],
            ),
            subscribe=(),
        ),
        "projector": Permissions(
            publish=(
                *log_reader,
                *_pull(orders, t.consumer("projector")),
                *_follow(orders),  # rebuild replay
                *_pull(resume, t.consumer("projector")),
                # The reconciler nudges the owners of stalled orders.
                t.resume_subject("router"),
                t.resume_subject("executor"),
            ),
            subscribe=(),
        ),
    }
    return {
        user: Permissions(
            publish=_unique(p.publish), subscribe=_unique((*p.subscribe, f"{inbox_prefix(user)}.>"))
        )
        for user, p in table.items()
    }


def _unique(subjects: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(subjects))


def authorization(topology: Topology, passwords: Mapping[str, str]) -> str:
    """The `authorization { users: [...] }` block of nats-server's configuration.

    `passwords` maps each user to its password, or to `$VARIABLE` for nats-server to read
    from its environment (how Kubernetes and compose hand it a Secret).
    """
    table = permissions(topology)
    lines = ["authorization {", "  users: ["]
    for user in USERS:
        password = passwords[user]
        value = password if password.startswith("$") else json.dumps(password)
        lines.append(f"    {{user: {json.dumps(user)}, password: {value}")
        if user in table:
            lines.append("     permissions: {")
            for kind in ("publish", "subscribe"):
                lines.append(f"       {kind}: {{allow: [")
                lines += [f"         {json.dumps(subject)}" for subject in getattr(table[user], kind)]
                lines.append("       ]}")
            lines.append("     }")
        lines.append("    }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def markdown_table(topology: Topology) -> str:
    """The permission table as Markdown (deploy/README.md shows it; a test keeps it current)."""
    rows = ["| User | May publish | May subscribe |", "| --- | --- | --- |", "| `admin` | everything | everything |"]
    for user, perms in permissions(topology).items():
        pub = "<br>".join(f"`{s}`" for s in perms.publish)
        sub = "<br>".join(f"`{s}`" for s in perms.subscribe)
        rows.append(f"| `{user}` | {pub} | {sub} |")
    return "\n".join(rows) + "\n"
