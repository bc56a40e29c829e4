"""Structured logs: one JSON object a line (or plain text for a terminal).

A line written while an order is handled names it (`orderId`) and, when the order's trace
is recorded, the trace (`traceId`, 32 hex digits, as trace viewers search for it). Neither
is passed by the code that logs: the consume loop (per message) and the gateway (per
request) say which order is in hand (`about`), the current span says which trace, and
one filter on the handler adds both to every line.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from typing import Iterator

from shared import tracing

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"color_message", "taskName"}


_order_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("order_id", default=None)


@contextlib.contextmanager
def about(order_id: str) -> Iterator[None]:
    """Lines logged in this block (in this task and the tasks it starts) name `order_id`."""
    token = _order_id.set(order_id)
    try:
        yield
    finally:
        _order_id.reset(token)


class OrderContext(logging.Filter):
    """Adds `orderId` (the order in hand) and `traceId` (a recorded trace's) to a line that lacks them."""

    def filter(self, record: logging.LogRecord) -> bool:
        order_id = _order_id.get()
        if order_id is not None and not hasattr(record, "orderId"):
            record.orderId = order_id
        trace_id = tracing.trace_id()
        if trace_id is not None and not hasattr(record, "traceId"):
            record.traceId = trace_id
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}
        tail = " ".join(f"{k}={v}" for k, v in extra.items())
        line = f"{record.levelname.lower():5} {record.getMessage()}" + (f"  {tail}" if tail else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(service: str, *, level: str = "info", fmt: str = "json") -> None:
    """Log to stdout at `level` and above (`LOG_LEVEL`), as `fmt` (json | text)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter())
    handler.addFilter(OrderContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "uvicorn.error", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
