"""Spans cost nothing when tracing is off, and a sampled share of orders is traced when on."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing

SAMPLED_PARENT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.fixture(autouse=True)
def tracing_off_afterwards():
    yield
    tracing.setup("test", "none")


def test_with_tracing_off_a_span_is_the_shared_invalid_span_and_nothing_is_injected():
    tracing.setup("test", "none")
    with tracing.span("handle", SAMPLED_PARENT, **{"order.id": "o1"}) as span:
        assert span is trace.INVALID_SPAN
        headers: dict[str, str] = {}
        tracing.inject(headers)
    assert headers == {}


def test_a_trace_started_outside_the_sampled_share_is_not_recorded_but_still_propagated():
    tracing.export("test", InMemorySpanExporter(), sample_ratio=0.0)
    with tracing.span("submit order") as span:
        assert not span.is_recording()
        headers: dict[str, str] = {}
        tracing.inject(headers)
    assert int(headers["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0, "propagated as not sampled"


def test_a_span_continuing_a_sampled_trace_is_recorded_whatever_the_local_ratio():
    tracing.export("test", InMemorySpanExporter(), sample_ratio=0.0)
    with tracing.span("handle", SAMPLED_PARENT) as span:
        assert span.is_recording()
        assert span.get_span_context().trace_id == int("0af7651916cd43dd8448eb211c80319c", 16)


def test_a_sample_ratio_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError):
        tracing.setup("test", "otlp", sample_ratio=1.5)


def test_work_done_for_many_orders_is_a_span_in_each_orders_trace_carrying_its_type() -> None:
    tracing.export("test", InMemorySpanExporter(), sample_ratio=1.0)
    other = {"traceparent": "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01",
             tracing.ORDER_TYPE_HEADER: "limit"}
    with tracing.each("project order", {"o1": SAMPLED_PARENT, "o2": other}, "order.id", **{"batch.size": 3}) as spans:
        pass
    assert {k: (format(s.context.trace_id, "032x"), format(s.parent.span_id, "016x")) for k, s in spans.items()} == {
        "o1": ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
        "o2": ("1af7651916cd43dd8448eb211c80319c", "c7ad6b7169203331"),
    }
    assert spans["o2"].attributes["order.type"] == "limit" and spans["o1"].attributes["batch.size"] == 3
    assert all(s.end_time is not None for s in spans.values())


def test_an_exception_ends_every_span_of_the_work_in_error() -> None:
    tracing.export("test", InMemorySpanExporter(), sample_ratio=1.0)
    with pytest.raises(RuntimeError):
        with tracing.each("project order", {"o1": SAMPLED_PARENT, "o2": None}, "order.id") as spans:
            raise RuntimeError("database away")
    assert [s.status.status_code for s in spans.values()] == [StatusCode.ERROR, StatusCode.ERROR]


def test_with_tracing_off_work_for_many_orders_makes_no_span_and_messages_carry_no_context() -> None:
    tracing.setup("test", "none")
    with tracing.each("project order", {"o1": SAMPLED_PARENT}, "order.id") as spans:
        assert spans == {}
    assert tracing.carried(SAMPLED_PARENT) == "" and tracing.trace_id() is None


def test_an_order_type_travels_beside_the_trace_context_and_names_the_handlers_span() -> None:
    tracing.export("test", InMemorySpanExporter(), sample_ratio=1.0)
    with tracing.span("submit order"):
        headers: dict[str, str] = {}
        tracing.inject(headers, "sniper")
    with tracing.span("handle OrderAccepted", headers) as span:
        assert span.attributes["order.type"] == "sniper"
    assert tracing.carried(headers) == headers["traceparent"]


def test_a_failed_outcome_ends_the_current_span_in_error() -> None:
    tracing.export("test", InMemorySpanExporter(), sample_ratio=1.0)
    with tracing.span("handle OrderRouted", SAMPLED_PARENT) as span:
        tracing.failed("slippage_exceeded: output below the minimum")
    assert span.status.status_code == StatusCode.ERROR
