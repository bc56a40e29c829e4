from __future__ import annotations

from shared.simulation import SimSettings


class RouterSettings(SimSettings, frozen=True, kw_only=True):
    ops_port: int = 9101
    concurrency: int = 256
    #: How often every pair and venue is quoted on the quotes subject.
    quote_feed_interval_ms: int = 1000
    #: How often the router saves its resting book to the BOOK object store (0: never, and
    #: every start replays the whole log).
    book_snapshot_interval_s: float = 30.0
