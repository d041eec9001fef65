"""controller/ha/notify.py on real PostgreSQL: a commit that adds change-log
rows wakes the listener of another process at once (the trigger of migration
d4b8e2a61f37); an uncommitted or rolled-back insert does not."""
from __future__ import annotations

import threading
import time

from sqlalchemy import insert

from controller.db import models as m
from controller.db.session import Database
from controller.ha.notify import ChangeLogListener


def test_a_committed_change_wakes_the_listener_and_a_rollback_does_not(postgres):
    url = postgres.new_database()
    listener_db, writer_db = Database(url), Database(url)
    listener_db.upgrade()
    woken = threading.Event()
    calls = []

    def on_change():
        calls.append(time.monotonic())
        woken.set()
    listener = ChangeLogListener(listener_db, on_change).start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _listening(listener_db):
            time.sleep(0.05)
        try:
            with writer_db.write() as s:
                s.execute(insert(m.ChangeLog).values(kind="port", resource_id="p-rolled-back"))
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        assert not woken.wait(0.5)
        with writer_db.write() as s:
            s.execute(insert(m.ChangeLog).values(kind="port", resource_id="p1"))
            s.execute(insert(m.ChangeLog).values(kind="port", resource_id="p2"))
        assert woken.wait(10)
        assert listener.notifications >= 1
    finally:
        listener.stop()
        listener_db.dispose()
        writer_db.dispose()


def test_sqlite_needs_no_listener(db):
    listener = ChangeLogListener(db, lambda: None).start()
    assert not listener._thread.is_alive()


def _listening(db) -> bool:
    from sqlalchemy import text
    with db.read() as s:
        return bool(s.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'")))
