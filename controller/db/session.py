"""Engine, transactions and migrations.

All writes go through `Database.write()`, a transaction that either commits
whole or leaves nothing behind. On SQLite it starts with BEGIN IMMEDIATE
(one writer at a time, no lock-upgrade deadlocks); on PostgreSQL it retries
serialization failures and deadlocks.

SQLite specifics (WAL mode):
* `Database.read()` sessions start with a deferred BEGIN on an engine of
  their own: a WAL reader sees a consistent snapshot and neither waits for nor
  blocks the writer. (Reads used to take BEGIN IMMEDIATE too, so every GET,
  change-log poll and OVSDB round queued for the write lock; under a stream of
  API writes SQLite's busy handler - a sleep-and-poll loop, not a queue -
  starved them past busy_timeout: "database is locked".)
* Writers of this process queue on a Python lock before BEGIN IMMEDIATE, so
  they are served in turn instead of polling SQLite's lock; busy_timeout
  still covers writers in other processes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time

from sqlalchemy import create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

LOG = logging.getLogger(__name__)

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


class Database:
    def __init__(self, url: str):
        url = _with_driver(url)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self.engine = _sqlite_engine(url, _sqlite_on_begin)
            self.read_engine = self.new_read_engine()
            # Re-entrant: a nested write() in the same thread must not deadlock here.
            self._write_lock: threading.RLock | None = threading.RLock()
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.read_engine = self.engine
            self._write_lock = None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    def new_read_engine(self):
        """An engine whose transactions take no lock, with a connection pool
        of its own: on an SQLite file, a deferred BEGIN in WAL mode (see the
        module docstring); elsewhere (PostgreSQL, in-memory SQLite) the main
        engine. `read()` uses one (self.read_engine); a path that must never wait for a pooled
        connection the API holds (the DHCP responder, on a switch's receive
        thread) makes its own. The one way to read SQLite without its lock."""
        path = self.url.split("///", 1)[-1] if self.is_sqlite else ""
        if not path or path == ":memory:":
            return self.engine
        return _sqlite_engine(self.url, _sqlite_on_begin_deferred)

    @contextlib.contextmanager
    def read(self):
        """A session for reading; nothing it does is committed (on SQLite it
        cannot write at all: its transaction never takes the write lock)."""
        s: Session = self._read_sessions()
        try:
            yield s
        finally:
            s.rollback()
            s.close()

    @contextlib.contextmanager
    def write(self):
        """One transaction: commit on success, roll back on any exception."""
        lock = self._write_lock
        # Bounded like busy_timeout: a stuck writer makes the others fail on
        # SQLite's lock after a while rather than hang here for ever.
        if lock is not None and not lock.acquire(timeout=30):
            lock = None
        s: Session = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()
            if lock is not None:
                lock.release()

    def run_in_transaction(self, fn, *args, retries: int = 10, retry_integrity: bool = False,
                           **kwargs):
        """Run fn(session, ...) in a write transaction, retrying on transient
        conflicts (lock timeouts, serialization failures, deadlocks), after a
        random pause that grows with the attempts (two writers that collided
        do not meet again in step). The one retry loop of the code base.

        retry_integrity: also retry an IntegrityError (the API's writes:
        generated values - random IPs, MACs, segment ids - may collide with a
        concurrent transaction, and the unique keys catch that)."""
        for attempt in range(retries):
            try:
                with self.write() as s:
                    return fn(s, *args, **kwargs)
            except (OperationalError, DBAPIError) as e:
                if attempt == retries - 1 or not (
                        is_transient(e) or (retry_integrity and isinstance(e, IntegrityError))):
                    raise
                LOG.debug("retrying transaction after %s", type(getattr(e, "orig", e)).__name__)
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise AssertionError("unreachable")

    def upgrade(self):
        """Bring the schema to the newest migration."""
        self._migrate("upgrade", "head")
        LOG.info("database schema at head (%s)", _redact(self.url))

    def downgrade(self, revision: str):
        """Take the schema back to `revision` (benchmarks running an older
        version of the code on the same database)."""
        self._migrate("downgrade", revision)
        LOG.info("database schema at %s (%s)", revision, _redact(self.url))

    def _migrate(self, direction: str, revision: str):
        from alembic import command
        from alembic.config import Config as AlembicConfig
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", MIGRATIONS_DIR)
        cfg.attributes["connection_url"] = self.url
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, direction)(cfg, revision)

    def dispose(self):
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _sqlite_engine(url: str, on_begin):
    """An SQLite engine: pysqlite's own transaction handling off
    (isolation_level=None: `on_begin` says how a transaction starts), any
    thread, a 30 s busy timeout, the pragmas of _sqlite_on_connect."""
    engine = create_engine(url, connect_args={"check_same_thread": False, "isolation_level": None,
                                              "timeout": 30})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", on_begin)
    return engine


def _sqlite_on_connect(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # A bigger page cache (20 MB, default 2 MB) and in-memory sort space:
    # big lists scan and sort whole tables.
    cur.execute("PRAGMA cache_size=-20000")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _sqlite_on_begin(conn):
    # pysqlite's own transaction handling is off (isolation_level=None); start
    # every transaction as IMMEDIATE so writers queue on the lock instead of
    # failing with "database is locked" when upgrading a read lock.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_on_begin_deferred(conn):
    # Read sessions: a WAL snapshot that takes no lock (see the module docstring).
    conn.exec_driver_sql("BEGIN")


def is_transient(e: Exception) -> bool:
    """A conflict that a retry of the whole transaction can get past."""
    msg = str(getattr(e, "orig", e)).lower()
    return any(s in msg for s in ("database is locked", "could not serialize",
                                  "deadlock detected", "serialization failure"))


def _with_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg 3; use psycopg2 when that is
    what is installed."""
    if url.startswith("postgresql://"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
