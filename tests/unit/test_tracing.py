"""Spans cost nothing when tracing is off, and a sampled share of orders is traced when on."""

from __future__ import annotations

import pytest
from opentelemetry import trace
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
