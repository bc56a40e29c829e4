"""The durable consumers of the order stream: what each one is, and how set-up makes it.

Each service that acts on every order has one durable, filtered by the server to the
event types it acts on (`shared.setup.DURABLE_EVENTS`). The admin set-up step creates
them (`ensure_consumer`); the services only bind (`shared.consumer.Consumer`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import nats.js.api as api
import nats.js.errors
from nats.js import JetStreamContext

from shared.setup import DURABLE_EVENTS
from shared.topology import Topology

log = logging.getLogger(__name__)

#: Seconds a delivered message waits for its ack before it is delivered again: a process
#: killed mid-handling costs about this much. Long handlers send in-progress acks.
ACK_WAIT = 3.0
#: Deliveries of one message before it is parked in the dead-letter stream.
MAX_DELIVER = 10


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str
    #: Subjects the server delivers (any of them); everything else never reaches the service.
    filter_subjects: tuple[str, ...]
    ack_wait: float = ACK_WAIT
    max_deliver: int = MAX_DELIVER
    max_ack_pending: int = 2048


def order_spec(topology: Topology, service: str, **tunable: Any) -> ConsumerSpec:
    """The durable consumer of the order stream of `service`, filtered to the events it acts on."""
    subjects = topology.event_filter(*DURABLE_EVENTS[service])
    return ConsumerSpec(durable=topology.consumer(service), filter_subjects=tuple(subjects), **tunable)


def _filters(config: api.ConsumerConfig) -> set[str]:
    return set(config.filter_subjects or ([config.filter_subject] if config.filter_subject else []))


async def ensure_consumer(js: JetStreamContext, stream: str, spec: ConsumerSpec) -> None:
    """Create the durable consumer, or bring an existing one's filters and tunable settings to `spec`.

    Idempotent; the admin set-up step's job. An existing consumer keeps its position (the
    point of it) and what cannot change in place (deliver policy); its filter subjects,
    ack wait, maximum deliveries and maximum of pending acks are updated, so a deployment
    made with older settings gets the new ones from the next set-up run.
    """
    config = api.ConsumerConfig(
        durable_name=spec.durable,
        filter_subjects=list(spec.filter_subjects),
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=spec.ack_wait,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
    )
    for _ in range(3):
        try:
            info = await js.consumer_info(stream, spec.durable)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_consumer(stream, config)
                return
            except nats.js.errors.APIError:
                continue  # another replica created it meanwhile: look again
        existing = info.config
        tunable: dict[str, Any] = {
            "ack_wait": spec.ack_wait, "max_deliver": spec.max_deliver, "max_ack_pending": spec.max_ack_pending,
        }
        changed = {name: value for name, value in tunable.items() if getattr(existing, name) != value}
        if _filters(existing) != set(spec.filter_subjects):
            # nats-server 2.10+ changes a durable's filters in place; its position is kept.
            changed.update(filter_subject=None, filter_subjects=list(spec.filter_subjects))
        if changed:
            # The same durable name with a changed config is an update (nats-server 2.9+).
            await js.add_consumer(stream, dataclasses.replace(existing, **changed))
            log.info("consumer %s updated: %s", spec.durable, changed)
        return
    raise RuntimeError(f"could not create or find consumer {spec.durable} on {stream}")
