"""Traces that follow one order through every service, carried in NATS headers.

Off (`OTEL_TRACES_EXPORTER=none`), a span is one function call that yields a shared
non-recording span: no header is parsed, no context is attached, nothing is injected.
On, the gateway's root span decides whether an order is traced (`sample_ratio` of them)
and every other service follows that decision from the propagated header, so an order's
trace is whole or absent.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

_tracer = trace.get_tracer("engine")
_enabled = False


def setup(service: str, exporter: str, sample_ratio: float = 1.0) -> None:
    """Install a tracer provider; `exporter` is none | console | otlp.

    `sample_ratio` (0..1) is the share of traces started here that are recorded; a span
    continuing a trace from a message header follows the sender's decision.
    """
    global _enabled
    if not 0.0 <= sample_ratio <= 1.0:
        raise ValueError(f"trace sample ratio must be within 0..1, got {sample_ratio}")
    if exporter == "console":
        export(service, ConsoleSpanExporter(), sample_ratio)
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        export(service, OTLPSpanExporter(), sample_ratio)
    else:
        _enabled = False


def export(service: str, exporter: SpanExporter, sample_ratio: float) -> None:
    """Record spans, the sampled share of new traces, and hand them to `exporter` in batches."""
    global _tracer, _enabled
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), sampler=ParentBased(TraceIdRatioBased(sample_ratio))
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # for libraries; OpenTelemetry takes the first only
    _tracer = provider.get_tracer("engine")
    _enabled = True


def enabled() -> bool:
    """Whether spans are recorded and exported at all."""
    return _enabled


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
    context = propagate.extract(headers) if headers else None
    with _tracer.start_as_current_span(name, context=context, attributes=attributes) as current:
        yield current
