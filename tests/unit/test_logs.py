"""Log lines name the order in hand and its recorded trace, and nothing when there is none."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import logs, tracing

SAMPLED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
UNSAMPLED = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
log = logging.getLogger("tests.order")


@pytest.fixture
def lines() -> Iterator[Callable[[], list[dict]]]:
    """Logging set up as a service sets it up, written to a buffer; returns the lines `log` wrote."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.setup("test", level="info", fmt="json")
    written = io.StringIO()
    root.handlers[0].setStream(written)  # type: ignore[attr-defined]
    yield lambda: [line for line in map(json.loads, written.getvalue().splitlines()) if line["logger"] == log.name]
    root.handlers[:] = handlers
    root.setLevel(level)
    tracing.setup("test", "none")


def test_a_line_inside_a_handled_order_and_its_recorded_span_names_both(lines) -> None:
    tracing.export("test", InMemorySpanExporter(), sample_ratio=1.0)
    with logs.about("o1"), tracing.span("handle OrderRouted", SAMPLED):
        log.info("routed")
    [line] = lines()
    assert (line["orderId"], line["traceId"]) == ("o1", "0af7651916cd43dd8448eb211c80319c")


def test_a_line_outside_any_order_names_neither(lines) -> None:
    tracing.export("test", InMemorySpanExporter(), sample_ratio=1.0)
    with logs.about("o1"), tracing.span("handle OrderRouted", SAMPLED):
        pass
    log.info("idle")
    [line] = lines()
    assert "orderId" not in line and "traceId" not in line


def test_an_order_whose_trace_is_not_recorded_is_named_without_a_trace_id(lines) -> None:
    tracing.export("test", InMemorySpanExporter(), sample_ratio=1.0)
    with logs.about("o1"), tracing.span("handle OrderRouted", UNSAMPLED):
        log.info("routed")
    tracing.setup("test", "none")
    with logs.about("o2"), tracing.span("handle OrderRouted", SAMPLED):
        log.info("routed")
    assert [(line["orderId"], "traceId" in line) for line in lines()] == [("o1", False), ("o2", False)]


def test_an_order_id_the_line_gives_itself_is_kept(lines) -> None:
    with logs.about("o1"):
        log.info("other order", extra={"orderId": "o2"})
    [line] = lines()
    assert line["orderId"] == "o2"


def test_lines_below_the_level_are_left_out(lines) -> None:
    with logs.about("o1"):
        log.debug("detail")
        log.info("step")
    assert [line["msg"] for line in lines()] == ["step"]
