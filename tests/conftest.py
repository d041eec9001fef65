"""Fixtures shared by every test directory.

- `controller`: a real quantum-controller process on SQLite (fresh per test).
- `controller_factory`: start more (other DB URLs, args); all stopped at the end.
- `postgres`: one private PostgreSQL cluster for the session; `postgres.new_database()`.
"""
from __future__ import annotations

import pytest

from tests.support.controller import ControllerProcess
from tests.support.postgres import PostgresCluster


@pytest.fixture
def controller_factory(tmp_path):
    started: list[ControllerProcess] = []

    def make(db_url: str = "", args: list[str] | None = None, start: bool = True, **kw):
        c = ControllerProcess(str(tmp_path / f"ctl{len(started)}"), db_url=db_url, args=args, **kw)
        started.append(c)
        return c.start() if start else c

    yield make
    for c in started:
        c.stop()


@pytest.fixture
def controller(controller_factory):
    return controller_factory()


@pytest.fixture(scope="session")
def postgres():
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()
