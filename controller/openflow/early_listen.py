"""The OpenFlow listening socket, opened at the very start of the process.

A switch that finds nothing listening backs off (up to 1 s with
node-bootstrap's max_backoff; 8 s on Open vSwitch before 3.3 until it
reconfigures while connected), so a restarted controller used to wait for
each switch's next retry after it was up. Listening first (before the
imports of the OpenFlow apps, the database check and the API) lets the
kernel complete every switch's connection meanwhile; os-ken accepts them
from the same socket once its apps run (osken_patches.set_listen_backlog).
No os-ken import here: this runs before it is loaded.
"""
from __future__ import annotations

import socket

_bound: dict[tuple[str, int], socket.socket] = {}


def listen(host: str, port: int, backlog: int) -> None:
    """Bind and listen now; raises OSError (e.g. the port is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
        s.listen(max(1, int(backlog)))
    except OSError:
        s.close()
        raise
    _bound[(host, int(port))] = s


def take(addr) -> socket.socket | None:
    """The socket listening on addr (host, port), once; None if there is none."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return _bound.pop((addr[0], int(addr[1])), None)
    return None
