"""Limits on what a client may send before the application sees a request.

uvicorn's httptools protocol reads request heads of any size and waits for a request
line, its headers or a declared body for as long as the client likes. The gateway is
public, so `guarded_protocol(limits)` returns a subclass that, per connection:

- refuses a request target longer than `max_target_bytes` with 414 and a request line
  plus headers longer than `max_header_bytes` with 431 (WebSocket upgrades included,
  since they are refused before the upgrade);
- answers 408 and closes when the head has not arrived within `header_timeout_s` of the
  connection opening or the request starting, or the body within `body_timeout_s` of
  the head (a slow sender, or a body shorter than its Content-Length);
- answers malformed HTTP with a JSON 400 instead of uvicorn's plain text.

Every refusal is `{error, detail}` JSON with `connection: close`, and the connection
is closed: a client that broke the framing cannot be trusted to frame the next request.
The close lingers (as nginx's does): the answer is followed by a FIN, and whatever the
client still sends is read and dropped for `LINGER_S`, because closing a socket with
unread data sends a reset that can destroy the answer before the client reads it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

LINGER_S = 1.0


@dataclass(frozen=True)
class TransportLimits:
    max_target_bytes: int = 2_048
    max_header_bytes: int = 8_192
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the reason is on the protocol."""


def guarded_protocol(limits: TransportLimits) -> type[HttpToolsProtocol]:
    """An httptools protocol class for `uvicorn.Config(http=...)` that enforces `limits`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    limits = TransportLimits()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._refusal: tuple[int, str, str] | None = None
        self._in_head = True  # bytes received now belong to a request line or headers
        self._head_bytes = 0  # of the current head, as the parser reports its parts
        self._raw_head_bytes = 0  # as received: bounds a header the parser is still collecting
        self._target_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._lingering = False

    # Timers: one deadline at a time, for the head or for the body.

    def _arm(self, seconds: float, detail: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, detail)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, detail: str) -> None:
        self._deadline = None
        if not self._open():
            return
        self._respond(408, "request_timeout", detail)

    def _open(self) -> bool:
        """Still serving: not closed, and not already answered with a refusal."""
        return self.transport is not None and not self.transport.is_closing() and not self._lingering

    # Connection and parser callbacks.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout_s, "the request headers did not arrive in time")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # answered and closing: the rest is dropped unread
        if self._in_head:
            self._raw_head_bytes += len(data)
        super().data_received(data)
        if (
            self._in_head
            and self._raw_head_bytes > self.limits.max_header_bytes + self.limits.max_target_bytes
            and self._open()
        ):
            self._respond(431, "headers_too_large", f"request headers are larger than {self.limits.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._target_bytes = 0
        self._arm(self.limits.header_timeout_s, "the request headers did not arrive in time")

    def on_url(self, url: bytes) -> None:
        self._target_bytes += len(url)
        self._head_bytes += len(url)
        if self._target_bytes > self.limits.max_target_bytes:
            self._refuse(414, "uri_too_long", f"the request target is longer than {self.limits.max_target_bytes} bytes")
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_bytes > self.limits.max_header_bytes:
            self._refuse(431, "headers_too_large", f"request headers are larger than {self.limits.max_header_bytes} bytes")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._raw_head_bytes = 0
        self._disarm()
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(self.limits.body_timeout_s, "the request body did not arrive in time")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket protocol takes the connection over with its own keep-alive
        super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._respond(*self._refusal)
        else:
            self._respond(400, "bad_request", "the request is not valid HTTP/1.1")

    # Refusals.

    def _refuse(self, status: int, error: str, detail: str) -> None:
        self._refusal = (status, error, detail)
        raise _Refused(detail)  # httptools stops parsing and uvicorn calls send_400_response

    def _respond(self, status: int, error: str, detail: str) -> None:
        self._disarm()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and not self._in_head:
            self.transport.close()  # answered already (say 413) and the rest of the body never came
            return
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # a response is half written: nothing valid can follow it
                self.transport.close()
                return
            # The application is waiting for a body that will not come: it sees a disconnect
            # and whatever it answers is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        body = json.dumps({"error": error, "detail": detail}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"cache-control: no-store\r\n",
            b"x-content-type-options: nosniff\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._linger()

    def _linger(self) -> None:
        self._lingering = True
        self.flow.resume_reading()  # keep draining what the client sends, unparsed
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)
