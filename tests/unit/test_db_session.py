"""controller/db/session.py on SQLite: reads never wait for the write lock,
and writers of one process take turns instead of failing with
"database is locked"."""
import threading

from sqlalchemy import func, insert, select

from controller.db import models
from controller.db.session import Database


def _count(s) -> int:
    return s.scalar(select(func.count()).select_from(models.ChangeLog))


def test_read_runs_while_a_write_transaction_holds_the_lock(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/q.db")
    db.upgrade()
    try:
        with db.write() as w:
            w.execute(insert(models.ChangeLog).values(kind="port", resource_id="p1"))
            # BEGIN IMMEDIATE is held here; a read in the same thread would
            # wait for it for ever if reads took the write lock too.
            with db.read() as r:
                assert _count(r) == 0          # a snapshot: the write is not committed
        with db.read() as r:
            assert _count(r) == 1
    finally:
        db.dispose()


def test_concurrent_writers_and_readers_lose_no_work(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/q.db")
    db.upgrade()
    failures: list[BaseException] = []

    def writer(n):
        try:
            for i in range(25):
                with db.write() as s:
                    s.execute(insert(models.ChangeLog).values(kind="port", resource_id=f"{n}-{i}"))
        except BaseException as e:      # noqa: BLE001 - reported below
            failures.append(e)

    def reader():
        try:
            for _ in range(50):
                with db.read() as s:
                    _count(s)
        except BaseException as e:      # noqa: BLE001
            failures.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        with db.read() as s:
            assert _count(s) == 100
    finally:
        db.dispose()
