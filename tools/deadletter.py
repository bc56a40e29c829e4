"""`python -m tools.deadletter`: list, show and re-drive the order events parked by consumers.

    python -m tools.deadletter list [--json]
    python -m tools.deadletter show SEQ
    python -m tools.deadletter redrive SEQ... | --all

A consumer that fails on an event's last delivery (`shared.consumer`), or whose deliveries
run out while a process holds it, leaves it to nats-server, whose advisory the dead-letter
stream keeps: SEQ is the record's number there. The event itself stays in the order log.
Re-driving queues a nudge for the consumer's service to take the order up again from the
log (`resume.<service>.<orderId>`), then removes the record. Connects as the admin user to
the NATS of a running `make run` (or `NATS_URL`, `NATS_USER`, `NATS_PASSWORD`).
"""

from __future__ import annotations

import argparse
import sys

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from shared import events as ev
from shared.eventlog import EVENT_TYPE_HEADER
from shared.setup import DURABLES, SetupMissing
from shared.topology import Topology
from tools import local

#: Header and body of a nudge as the resume consumers read them (order id in the subject).
RESUME_KIND = "Resume"


class Advisory(msgspec.Struct, kw_only=True):
    """nats-server's `max_deliver` and `terminated` advisories (the fields used here)."""

    type: str
    timestamp: str
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int
    reason: str = ""


class Parked(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One parked event: the dead-letter record and what the order log holds at its position."""

    seq: int  # the record's sequence in the dead-letter stream
    stream_seq: int  # the event's position in the order stream
    consumer: str
    deliveries: int
    parked_at: str
    reason: str  # the consumer's, or "max deliveries" when they ran out
    order_id: str = ""  # empty when the order stream no longer holds the event
    event_type: str = ""
    order_seq: int = 0


class NotParked(LookupError):
    pass


async def parked(js: JetStreamContext, topology: Topology, seqs: list[int] | None = None) -> list[Parked]:
    """The parked events (`seqs`: only these records; `NotParked` if one is missing)."""
    stream = topology.deadletter_stream
    try:
        await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        raise SetupMissing(f"stream {stream}") from None
    out = []
    if seqs is None:  # each record from the first on, skipping the gaps re-driven ones left
        seq = 1
        while True:
            try:
                raw = await js.get_msg(stream, seq, subject=">", next=True)
            except nats.js.errors.NotFoundError:
                return out
            out.append(await _describe(js, topology, raw.seq, msgspec.json.decode(raw.data, type=Advisory)))
            seq = raw.seq + 1
    for seq in seqs:
        try:
            raw = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            raise NotParked(f"no parked event {seq} in {stream}") from None
        out.append(await _describe(js, topology, seq, msgspec.json.decode(raw.data, type=Advisory)))
    return out


async def _describe(js: JetStreamContext, topology: Topology, seq: int, advisory: Advisory) -> Parked:
    fields = dict(
        seq=seq, stream_seq=advisory.stream_seq, consumer=advisory.consumer, deliveries=advisory.deliveries,
        parked_at=advisory.timestamp, reason=advisory.reason or "max deliveries",
    )
    try:
        msg = await js.get_msg(topology.orders_stream, advisory.stream_seq)
    except nats.js.errors.NotFoundError:
        return Parked(**fields)
    try:
        order_id = topology.parse_order_subject(msg.subject)[0]
    except ValueError:  # an event of the layout before `orders.<id>.<seq>.<type>`
        order_id = msg.subject.rsplit(".", 1)[-1]
    try:
        order_seq = ev.decode(msg.data).seq
    except (msgspec.DecodeError, msgspec.ValidationError):
        order_seq = 0
    kind = (msg.headers or {}).get(EVENT_TYPE_HEADER, "unknown")
    return Parked(**fields, order_id=order_id, event_type=kind, order_seq=order_seq)


async def show(js: JetStreamContext, topology: Topology, seq: int) -> str:
    """One parked event with the event itself, decoded."""
    [record] = await parked(js, topology, [seq])
    lines = [f"{name:<11} {value}" for name, value in msgspec.structs.asdict(record).items()]
    try:
        msg = await js.get_msg(topology.orders_stream, record.stream_seq)
    except nats.js.errors.NotFoundError:
        return "\n".join(lines + ["event      gone from the order stream"])
    try:
        body = msgspec.json.format(msgspec.json.encode(ev.decode(msg.data)), indent=2).decode()
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        body = f"undecodable ({exc}): {msg.data!r}"
    return "\n".join(lines + ["event", body])


async def redrive(js: JetStreamContext, topology: Topology, record: Parked) -> None:
    """Nudge the consumer's service to resume the order, then remove the record."""
    if record.consumer not in DURABLES:
        raise NotParked(f"record {record.seq}: consumer {record.consumer!r} takes no resume nudges")
    if not record.order_id:
        raise NotParked(f"record {record.seq}: event {record.stream_seq} is gone from the order stream")
    await js.publish(
        topology.resume_subject(record.consumer, record.order_id),
        msgspec.json.encode({"seq": record.order_seq}),
        stream=topology.resume_stream,
        # One nudge per record, however often a failed re-drive is tried again.
        headers={"Nats-Msg-Id": f"redrive:{topology.deadletter_stream}:{record.seq}", EVENT_TYPE_HEADER: RESUME_KIND},
    )
    await js.delete_msg(topology.deadletter_stream, record.seq)


def render(records: list[Parked]) -> str:
    if not records:
        return "nothing parked: every event was handled"
    header = ("SEQ", "ORDER", "EVENT", "CONSUMER", "DELIVERIES", "PARKED", "REASON")
    rows = [header] + [
        (str(r.seq), r.order_id or "(gone)", r.event_type or "-", r.consumer, str(r.deliveries),
         r.parked_at[:19].replace("T", " ") + "Z", r.reason)
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.deadletter", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the parked events")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    one = sub.add_parser("show", help="one parked event, decoded")
    one.add_argument("seq", type=int)
    again = sub.add_parser("redrive", help="nudge the consumer's service to resume the order; drop the record")
    which = again.add_mutually_exclusive_group(required=True)
    which.add_argument("seq", type=int, nargs="*", default=[])
    which.add_argument("--all", action="store_true", help="every parked event")
    return parser


async def _run(args: argparse.Namespace) -> int:
    conn = local.connection("admin")
    topology = Topology(namespace=conn.namespace)
    nc = await local.connect_nats(conn, "deadletter")
    js = nc.jetstream()
    try:
        if args.command == "list":
            records = await parked(js, topology)
            print(msgspec.json.encode(records).decode() if args.json else render(records))
        elif args.command == "show":
            print(await show(js, topology, args.seq))
        else:
            records = await parked(js, topology, None if args.all else args.seq)
            failed = 0
            for record in records:
                try:
                    await redrive(js, topology, record)
                except (NotParked, nats.errors.Error) as exc:
                    failed += 1
                    print(f"error: {exc}", file=sys.stderr)
                    continue
                print(f"re-drove {record.seq}: {record.consumer} resumes order {record.order_id}")
            return 1 if failed else 0
    finally:
        await nc.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    local.run_command(_run(_parser().parse_args(argv)), NotParked, SetupMissing)


if __name__ == "__main__":
    main()
