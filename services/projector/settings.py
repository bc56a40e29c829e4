"""The projector's settings, read from the environment (see `shared.settings`)."""

from __future__ import annotations

from shared.settings import DEFAULT_DATABASE_URL, Common


class ProjectorSettings(Common, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    database_schema: str = "public"  # the schema the read-model tables live in
    ops_port: int = 9103
    projector_batch: int = 500  # events folded and written per transaction
    #: How long a batch may gather events after its first before it is written: a write
    #: costs about the same for one event as for dozens, so a short wait buys most of the
    #: read model's CPU back for a little lag.
    projector_linger_ms: int = 50
    #: The reconciler scans for stalled orders this often, and nudges the owner of an order
    #: neither finished nor resting whose last event is older than the stall deadline.
    reconcile_interval_s: float = 5.0
    reconcile_stall_s: float = 30.0
    #: Events a rebuild folds per batch; it holds at most twice as many orders in memory.
    rebuild_batch: int = 2000
