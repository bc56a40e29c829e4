import nats.js.api as api
import pytest

from shared.consumer import ConsumerSpec, ensure_consumer


@pytest.fixture
def js(jetstream):
    _, js, topology = jetstream
    return js, topology


async def test_a_consumer_is_created_once_and_an_existing_one_is_kept_as_it_is(js):
    js, topology = js
    spec = ConsumerSpec(durable="worker", filter_subject=topology.orders_wildcard)
    await ensure_consumer(js, topology.orders_stream, spec)
    await ensure_consumer(js, topology.orders_stream, spec)
    other = ConsumerSpec(durable="late", filter_subject=topology.orders_wildcard)
    await js.add_consumer(topology.orders_stream, api.ConsumerConfig(
        durable_name="late", filter_subject=topology.orders_wildcard, ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.NEW))
    await ensure_consumer(js, topology.orders_stream, other)  # a setting it cannot change: kept, no error
    info = await js.consumer_info(topology.orders_stream, "late")
    assert info.config.deliver_policy == api.DeliverPolicy.NEW
    names = {c.name for c in await js.consumers_info(topology.orders_stream)}
    assert {"worker", "late"} <= names
