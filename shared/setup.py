"""What a service needs to exist before it starts, and the error when it does not.

Streams, durable consumers and buckets are created by one admin step, `python -m
tools.setup` (run by `make run` and the test fixtures before the services, by a
Kubernetes Job, by a one-shot compose service). The services' NATS users may not create,
change or delete any of them (`shared.natsauth`): they bind to what exists, and a
missing piece fails start-up with `SetupMissing`, which names that step.
"""

from __future__ import annotations

import nats.js.api as api
import nats.js.errors
from nats.js import JetStreamContext

SETUP_STEP = (
    "run the set-up step first: `python -m tools.setup` as the NATS admin user"
    " (`make run` does it; on Kubernetes the `setup` Job, in compose the `setup` service)"
)

#: The durable consumers of the order stream, one per service that acts on every order,
#: each with the event types the server delivers to it (none named: every event).
DURABLE_EVENTS: dict[str, tuple[str, ...]] = {
    "router": ("OrderAccepted", "OrderTriggered"),
    "executor": ("OrderRouted",),
    "projector": (),
}
DURABLES = tuple(DURABLE_EVENTS)


class SetupMissing(RuntimeError):
    """A stream, consumer or bucket the service binds to does not exist."""

    def __init__(self, what: str):
        super().__init__(f"{what} does not exist: {SETUP_STEP}")


async def require_streams(js: JetStreamContext, *streams: str) -> None:
    """Raise `SetupMissing` unless every stream exists."""
    for stream in streams:
        try:
            await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            raise SetupMissing(f"stream {stream}") from None


async def require_consumer(js: JetStreamContext, stream: str, durable: str) -> api.ConsumerInfo:
    """The durable consumer's info; `SetupMissing` if it does not exist on `stream`."""
    try:
        return await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        raise SetupMissing(f"durable consumer {durable} on stream {stream}") from None
