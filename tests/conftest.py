"""Fixtures shared by every test directory.

- `controller`: a real quantum-controller process on SQLite (fresh per test).
- `controller_factory`: start more (other DB URLs, args); all stopped at the end.
- `postgres`: one private PostgreSQL cluster for the session; `postgres.new_database()`.
- `keystone`: one real Keystone for the session, seeded with two projects and
  their users, a service user and an admin (tests/support/keystone.py).
- `keystone_controller`: a controller with auth_strategy = keystone (per module),
  the catalog's network endpoint.

At session start every executable the suite runs must exist (tests/support/tools.py).
"""
from __future__ import annotations

import pytest

from tests.support.controller import ControllerProcess
from tests.support.keystone import KeystoneServer, controller_ini, seed
from tests.support.postgres import PostgresCluster
from tests.support.tools import missing_executables


def pytest_sessionstart(session):
    """Stop at once, with one message, when an executable the suite runs is missing
    (rather than a FileNotFoundError deep in a fixture). tools/test.sh installs them all."""
    missing = missing_executables()
    if missing:
        pytest.exit("the test suite needs these executables, which are missing "
                    "(bash tools/test.sh installs them):\n  " + "\n  ".join(missing), returncode=4)


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


@pytest.fixture(scope="session")
def keystone():
    server = KeystoneServer().start()
    try:
        yield seed(server)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def keystone_controller(keystone, tmp_path_factory):
    d = tmp_path_factory.mktemp("kctl")
    c = ControllerProcess(str(d / "state"), args=["--config-file",
                                                  controller_ini(d / "q.conf", keystone.ks)])
    c.start()
    keystone.ks.network_endpoint(c.url)
    yield c
    c.stop()
