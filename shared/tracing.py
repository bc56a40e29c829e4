"""Traces that follow one order through every service, carried in NATS headers."""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

_tracer = trace.get_tracer("engine")
#: False while spans go nowhere (`setup` with exporter none, or never called): `span` and
#: `inject` then cost next to nothing, which matters once per consumed message.
_enabled = False


def setup(service: str, exporter: str) -> None:
    """Install a tracer provider; `exporter` is none | console | otlp (none: no spans at all)."""
    global _tracer, _enabled
    _enabled = exporter in ("console", "otlp")
    if not _enabled:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("engine")


def inject(headers: MutableMapping[str, str]) -> None:
    """Put the current trace context into outgoing message headers."""
    if _enabled:
        propagate.inject(headers)


@contextlib.contextmanager
def span(name: str, headers: Mapping[str, str] | None = None, **attributes: str | int) -> Iterator[trace.Span]:
    """A span continuing the trace found in `headers`, if any."""
    if not _enabled:
        yield trace.INVALID_SPAN
        return
    context = propagate.extract(dict(headers or {}))
    with _tracer.start_as_current_span(name, context=context, attributes=attributes) as current:
        yield current
