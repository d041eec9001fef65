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


def test_one_retry_loop_for_conflicts_and_for_the_apis_collisions(db):
    """run_in_transaction retries a transient conflict always and an
    IntegrityError only when asked (the API's run_write asks: a generated
    value collided); each attempt starts over in a fresh transaction."""
    import pytest
    from sqlalchemy.exc import IntegrityError, OperationalError

    def flaky(error, failures):
        calls = []

        def txn(s):
            calls.append(1)
            s.execute(insert(models.ChangeLog).values(kind="port", resource_id=f"r{len(calls)}"))
            if len(calls) <= failures:
                raise error
            return len(calls)
        return txn, calls

    locked = OperationalError("INSERT", {}, Exception("database is locked"))
    txn, calls = flaky(locked, 2)
    assert db.run_in_transaction(txn) == 3
    clash = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
    txn, calls = flaky(clash, 1)
    with pytest.raises(IntegrityError):
        db.run_in_transaction(txn)
    assert len(calls) == 1
    txn, calls = flaky(clash, 1)
    assert db.run_in_transaction(txn, retry_integrity=True) == 2
    with db.read() as r:            # only the attempts that committed left rows
        assert _count(r) == 2
