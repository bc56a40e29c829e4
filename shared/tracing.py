"""Traces that follow one order through every service, carried in NATS headers.

Off (`OTEL_TRACES_EXPORTER=none`), a span is one function call that yields a shared
non-recording span: no header is parsed, no context is attached, nothing is injected.
On, the gateway's root span decides whether an order is traced (`sample_ratio` of them)
and every other service follows that decision from the propagated header, so an order's
trace is whole or absent.

Every event appended carries the appending span's context (`traceparent`) and the
order's type (`Order-Type`), so whoever handles the event continues the order's trace
and names the order's type without reading the order. A span ends in error when its
work raises or ends the order in failure (`failed`).
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator, Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode

#: The W3C header of a span's context, as propagated; stored alone, it continues a trace later.
TRACEPARENT = "traceparent"
#: The order's type (market | limit | sniper) beside the trace context of every event.
ORDER_TYPE_HEADER = "Order-Type"

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


def inject(headers: MutableMapping[str, str], order_type: str = "") -> None:
    """Put the current trace context (and the order's type) into outgoing message headers."""
    if _enabled:
        propagate.inject(headers)
        if order_type:
            headers[ORDER_TYPE_HEADER] = order_type


def carried(headers: Mapping[str, str] | None) -> str:
    """The trace context a message carries, to keep and continue later ("" when off or none)."""
    if not _enabled or not headers:
        return ""
    return headers.get(TRACEPARENT, "")


def trace_id() -> str | None:
    """The current trace's id (32 hex digits) while a recorded span is current, else None."""
    if not _enabled:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.trace_flags.sampled else None


@contextlib.contextmanager
def span(name: str, headers: Mapping[str, str] | None = None, **attributes: str | int) -> Iterator[trace.Span]:
    """A span continuing the trace found in `headers` (message headers, or `{TRACEPARENT: kept}`), if any.

    The order's type in `headers` becomes the `order.type` attribute. An exception
    escaping the block ends the span in error.
    """
    if not _enabled:
        yield trace.INVALID_SPAN
        return
    context = None
    if headers:
        context = propagate.extract(headers)
        if (order_type := headers.get(ORDER_TYPE_HEADER)) and "order.type" not in attributes:
            attributes["order.type"] = order_type
    with _tracer.start_as_current_span(name, context=context, attributes=attributes) as current:
        yield current


@contextlib.contextmanager
def each(name: str, carriers: Mapping[str, Mapping[str, str] | None], key: str,
         **attributes: str | int) -> Iterator[dict[str, trace.Span]]:
    """One span per entry of `carriers`, each continuing the trace its headers carry.

    For work done once for many orders (the projector's batch write): each order's trace
    gets a span of the whole work, named `name`, with its key as attribute `key`. None of
    them is made current. An exception escaping the block ends them all in error.
    """
    if not _enabled:
        yield {}
        return
    started = time.time_ns()
    spans: dict[str, trace.Span] = {}
    for ident, headers in carriers.items():
        own = {key: ident, **attributes}
        if headers and (order_type := headers.get(ORDER_TYPE_HEADER)):
            own["order.type"] = order_type
        context = propagate.extract(headers) if headers else None
        spans[ident] = _tracer.start_span(name, context=context, attributes=own, start_time=started)
    try:
        yield spans
    except BaseException as exc:
        for current in spans.values():
            current.record_exception(exc)
            current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        ended = time.time_ns()
        for current in spans.values():
            current.end(end_time=ended)


def failed(reason: str, current: trace.Span | None = None) -> None:
    """End `current` (default: the current span) in error: the order failed or was refused."""
    if _enabled:
        (current or trace.get_current_span()).set_status(Status(StatusCode.ERROR, reason))
