"""Resume nudges: "take this order up again from the log", addressed to one role.

A nudge lives on the RESUME work queue, on `resume.<role>.<orderId>`; the subject names the
order, the body only says what the sender saw. Each role consumes its own nudges through
the same consume loop as order events (`shared.consumer.Consumer` with `decode=decode`)
and answers one by resuming the order from the log, which is idempotent: a nudge for an
order that moved on meanwhile does nothing.

A nudge is deduplicated by `Nats-Msg-Id = <orderId>:<seq>` (the order's last seq when
sent), so a sender that sees the same stalled order again adds nothing.
"""

from __future__ import annotations

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared import tracing
from shared.consumer import Consumer, Handler
from shared.durables import ConsumerSpec
from shared.eventlog import EVENT_TYPE_HEADER
from shared.ids import is_order_id
from shared.topology import Topology

#: The roles that take nudges.
ROLES = ("router", "executor", "projector")

#: Who moves an order on from each status that is neither terminal nor resting.
OWNER: dict[str, str] = {"pending": "router", "routing": "router", "building": "executor", "submitted": "executor"}

#: The kind a nudge is counted and traced under by the consume loop (its event-type header).
KIND = "Resume"


class Resume(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One nudge, as a handler receives it."""

    order_id: str
    seq: int = 0  # the order's last seq the sender saw
    status: str = ""  # its status then


class _Body(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    seq: int = 0
    status: str = ""


def decode(msg: Msg) -> Resume:
    """The nudge a message carries; the order id comes from the subject (decode hook of the consume loop)."""
    order_id = msg.subject.rsplit(".", 1)[-1]
    if not is_order_id(order_id):
        raise msgspec.ValidationError(f"subject {msg.subject!r} names no order")
    body = msgspec.json.decode(msg.data, type=_Body) if msg.data else _Body()
    return Resume(order_id=order_id, seq=body.seq, status=body.status)


async def nudge(js: JetStreamContext, topology: Topology, role: str, order_id: str, *, seq: int, status: str,
                trace: str = "", order_type: str = "") -> bool:
    """Queue a nudge for `role` to resume `order_id`; False if the same nudge is already queued or done.

    `trace` (the order's last event's `traceparent`) and `order_type` make the owner's
    resumed work part of the order's own trace; without them it continues the sender's.
    """
    headers = {"Nats-Msg-Id": f"{order_id}:{seq}", EVENT_TYPE_HEADER: KIND}
    if trace:
        headers[tracing.TRACEPARENT] = trace
        if order_type:
            headers[tracing.ORDER_TYPE_HEADER] = order_type
    else:
        tracing.inject(headers, order_type)
    ack = await js.publish(
        topology.resume_subject(role, order_id),
        msgspec.json.encode(_Body(seq=seq, status=status)),
        stream=topology.resume_stream,
        headers=headers,
    )
    return not ack.duplicate


def consumer_spec(topology: Topology, role: str) -> ConsumerSpec:
    """The durable consumer of `role`'s nudges (created by the set-up step)."""
    return ConsumerSpec(durable=topology.consumer(role), filter_subjects=(topology.resume_subject(role),))


def consumer(js: JetStreamContext, topology: Topology, role: str, handler: Handler, *, concurrency: int = 32) -> Consumer:
    """The consume loop of `role`'s nudges; `handler` receives a `Resume`."""
    return Consumer(js, topology.resume_stream, consumer_spec(topology, role), handler, concurrency=concurrency,
                    decode=decode)
