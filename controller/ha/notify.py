"""Wake-ups from PostgreSQL when another process commits a change.

A trigger on the change log (migration d4b8e2a61f37) sends NOTIFY
'quantum_changelog' at every commit that adds rows; this thread LISTENs on a
connection of its own and calls `on_change()` for each. The change log,
read by revision, stays the record (controller/apps/scheduler.py): a
notification lost while the connection was down costs only the wait for the
next poll, and a controller that was down reloads everything when it starts.
Nothing to do on SQLite (one process).
"""
from __future__ import annotations

import logging
import select
import threading
from typing import Callable

LOG = logging.getLogger(__name__)

CHANNEL = "quantum_changelog"
RECONNECT_S = 1.0


class ChangeLogListener:
    def __init__(self, db, on_change: Callable[[], None]):
        self.db = db
        self.on_change = on_change
        self.notifications = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="changelog-listen", daemon=True)

    def start(self) -> "ChangeLogListener":
        if not self.db.is_sqlite and self.db.engine.dialect.name == "postgresql":
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as e:       # the database went away: poll until it is back
                LOG.warning("change log notifications: %s; reconnecting", e)
            self._stop.wait(RECONNECT_S)

    def _listen(self) -> None:
        raw = self.db.engine.raw_connection()
        conn = raw.driver_connection
        raw.detach()                       # ours for good: never back to the pool in LISTEN state
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
            LOG.info("listening for change log notifications")
            while not self._stop.is_set():
                if select.select([conn], [], [], 1.0)[0]:
                    conn.poll()
                    if conn.notifies:
                        self.notifications += len(conn.notifies)
                        conn.notifies.clear()
                        self.on_change()
        finally:
            conn.close()
