"""Traces that follow one order through every service, carried in NATS headers.

With no exporter (`none`) nothing is recorded: a span that continues no incoming trace
costs nothing, and one that does only carries the incoming context on (so a service with
tracing on further down still joins the trace).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

_tracer = trace.get_tracer("engine")
_recording = False


def setup(service: str, exporter: str) -> None:
    """Install a tracer provider; `exporter` is none | console | otlp."""
    global _tracer, _recording
    if exporter == "none":
        _recording = False
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("engine")
    _recording = True


def inject(headers: MutableMapping[str, str]) -> None:
    """Put the current trace context into outgoing message headers."""
    if _recording or trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


@contextlib.contextmanager
def span(name: str, headers: Mapping[str, str] | None = None, **attributes: str | int) -> Iterator[trace.Span]:
    """A span continuing the trace found in `headers`, if any."""
    if not _recording and not headers:
        yield trace.INVALID_SPAN
        return
    context = propagate.extract(dict(headers or {}))
    with _tracer.start_as_current_span(name, context=context, attributes=attributes) as current:
        yield current
