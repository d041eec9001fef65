"""In-process change notifications: the API publishes what it committed, the
reconciler (and anything else interested) subscribes.

Callbacks run in the publisher's thread and must be quick (e.g. mark something
dirty and return); an exception in one is logged, never raised to the
publisher. Other controller processes learn of changes from the DB change log.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    kind: str            # "network", "subnet", "port", "router", "floatingip", "security_group", "node"
    id: str
    op: str = "update"   # "create" | "update" | "delete"


class ChangeBus:
    def __init__(self):
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[list[Change]], None]] = []

    def subscribe(self, fn: Callable[[list[Change]], None]) -> None:
        with self._lock:
            self._subscribers.append(fn)

    def unsubscribe(self, fn) -> None:
        with self._lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

    def publish(self, changes: list[Change]) -> None:
        if not changes:
            return
        with self._lock:
            subs = list(self._subscribers)
        for fn in subs:
            try:
                fn(changes)
            except Exception:
                LOG.exception("change subscriber %r failed", fn)
