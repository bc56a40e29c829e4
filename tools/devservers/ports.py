"""Free TCP ports on the loopback interface.

A port the OS picks for `bind(("", 0))` comes from the ephemeral range, where the kernel
also picks the local ports of outgoing connections: a server started on it a moment later
can find it taken by some client's connection. So ports are drawn below that range, where
only listeners live, and never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 10_000
_handed_out: set[int] = set()
_draw = random.Random()


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; elsewhere its usual start)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now, outside the ephemeral range."""
    high = _ephemeral_low()
    if high - _LOWEST >= 1_000:
        for _ in range(200):
            port = _draw.randrange(_LOWEST, high)
            if port not in _handed_out and port_is_free(port, host):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no room below: let the OS pick
        sock.bind((host, 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be bound on `host` at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
