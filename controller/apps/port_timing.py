"""Port-up latency for /metrics: from the OVSDB monitor binding a VIF it has
just seen plugged (bound(), after its transaction commits) to the port-status
writer making the port ACTIVE once its node's flows are confirmed (active()).
The histogram quantum_port_up_seconds; in-process, nothing stored."""
from __future__ import annotations

import threading
import time

from controller.metrics import Histogram

PORT_UP = Histogram(buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
MAX_WAITING = 100_000         # bound ports never seen ACTIVE (refused, deleted) do not pile up
_lock = threading.Lock()
_bound_at: dict[str, float] = {}
_active_at: dict[str, float] = {}    # ACTIVE written before its bound() (see bound)


def bound(port_ids, at: float | None = None) -> None:
    """These ports were (re)bound; `at` is when their VIFs were seen (monotonic).
    The scheduler follows the change log too, so a port can be ACTIVE before
    the monitor's thread gets here: then it is observed now."""
    at = time.monotonic() if at is None else at
    ups = []
    with _lock:
        if len(_bound_at) > MAX_WAITING:
            _bound_at.clear()
        if len(_active_at) > MAX_WAITING:
            _active_at.clear()
        for pid in port_ids:
            done = _active_at.pop(pid, None)
            if done is not None:
                ups.append(max(0.0, done - at))
            else:
                _bound_at[pid] = at
    for seconds in ups:
        PORT_UP.observe(seconds)


def settled(statuses: dict[str, str]) -> None:
    """Port id -> the status just written: ACTIVE ones are observed."""
    now = time.monotonic()
    ups = []
    with _lock:
        for pid, status in statuses.items():
            t = _bound_at.pop(pid, None)
            if status != "ACTIVE":
                _active_at.pop(pid, None)
            elif t is not None:
                ups.append(now - t)
            else:
                _active_at[pid] = now      # its bound() is still to come
    for seconds in ups:
        PORT_UP.observe(seconds)


def family():
    return PORT_UP.family("quantum_port_up_seconds",
                          "Seconds from a VIF bound by the OVSDB monitor to its port ACTIVE "
                          "(flows confirmed by a barrier, status written).")
