from __future__ import annotations

from shared.simulation import SimSettings


class RouterSettings(SimSettings, frozen=True, kw_only=True):
    ops_port: int = 9101
    concurrency: int = 256
    #: How often every pair and venue is quoted on the quotes subject.
    quote_feed_interval_ms: int = 1000
