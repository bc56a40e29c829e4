"""Names of streams, subjects, consumers and buckets, derived from one namespace.

A namespace lets several independent engines (or test runs) share one NATS server.
Each event is stored on its own subject, `orders.<orderId>.<seq>.<EventType>`: one
message per subject, so a direct get of the last message of every subject under
`orders.<orderId>.>` (`multi_last`) returns the whole order (sub-millisecond), and a
consumer can be filtered by the server to the event types its service acts on.
"""

from __future__ import annotations

import msgspec


class Topology(msgspec.Struct, frozen=True, kw_only=True):
    namespace: str = ""

    def _subject(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    def _stream(self, name: str) -> str:
        return f"{self.namespace.upper()}_{name}" if self.namespace else name

    @property
    def orders_stream(self) -> str:
        return self._stream("ORDERS")

    @property
    def orders_prefix(self) -> str:
        return self._subject("orders")

    @property
    def orders_subjects(self) -> str:
        """What the order stream stores: `orders.<orderId>.<seq>.<EventType>`."""
        return f"{self.orders_prefix}.*.*.*"

    def order_subject(self, order_id: str, seq: int, event_type: str) -> str:
        """Where the event `seq` (of type `event_type`) of one order is stored."""
        return f"{self.orders_prefix}.{order_id}.{seq}.{event_type}"

    def order_wildcard(self, order_id: str) -> str:
        """Every event of one order."""
        return f"{self.orders_prefix}.{order_id}.>"

    def event_filter(self, *event_types: str) -> list[str]:
        """Consumer filter subjects: events of these types, any order (none given: every event)."""
        return [f"{self.orders_prefix}.*.*.{kind}" for kind in event_types] or [self.orders_subjects]

    def parse_order_subject(self, subject: str) -> tuple[str, int, str]:
        """(order id, seq, event type) of a stored (or republished) event's subject."""
        order_id, seq, event_type = subject.rsplit(".", 3)[-3:]
        return order_id, int(seq), event_type

    @property
    def live_prefix(self) -> str:
        """Stored events are republished here: a subscriber sees only what the log kept."""
        return self._subject("live.orders")

    @property
    def live_republish(self) -> str:
        """The stream's republish destination: the stored subject under `live_prefix`."""
        return f"{self.live_prefix}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}"

    def live_subject(self, order_id: str) -> str:
        """Every stored event of one order, as it is stored."""
        return f"{self.live_prefix}.{order_id}.>"

    @property
    def quotes_stream(self) -> str:
        return self._stream("QUOTES")

    @property
    def quotes_prefix(self) -> str:
        return self._subject("quotes")

    def quote_subject(self, pair: str, venue: str) -> str:
        return f"{self.quotes_prefix}.{pair}.{venue}"

    def launches(self, pair: str = "*") -> tuple[str, str]:
        """The pool-launch stream and the subject announcing ``pair``'s pools (``*``: any pair's)."""
        return self._stream("POOLS"), self._subject(f"pools.created.{pair}")

    @property
    def chain_bucket(self) -> str:
        return self._stream("CHAIN")

    @property
    def accounts_bucket(self) -> str:
        """Key-value bucket of API keys (`keys.<keyId>`) and the gateway's secrets (`secrets.<name>`)."""
        return self._stream("ACCOUNTS")

    @property
    def ratelimit_stream(self) -> str:
        """Counter stream (ADR-49) of requests per API key, kind and time window."""
        return self._stream("RATELIMIT")

    def ratelimit_subject(self, key_id: str, kind: str, window: int | str) -> str:
        return self._subject(f"ratelimit.{key_id}.{kind}.{window}")

    def consumer(self, service: str) -> str:
        return service

    @property
    def resume_stream(self) -> str:
        """Work queue of nudges: 'take this order up again from the log' for one role."""
        return self._stream("RESUME")

    def resume_subject(self, role: str, order_id: str = "*") -> str:
        """A nudge for `role` (router or executor) to resume `order_id` (``*``: any order)."""
        return self._subject(f"resume.{role}.{order_id}")

    @property
    def deadletter_stream(self) -> str:
        """Events parked after too many failed deliveries, kept for inspection and re-drive."""
        return self._stream("DEADLETTER")

    @property
    def book_bucket(self) -> str:
        """Object store of the routers' resting-book snapshots."""
        return self._stream("BOOK")
