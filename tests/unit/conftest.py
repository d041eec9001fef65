import pytest

from controller.db.session import Database


@pytest.fixture
def db(tmp_path):
    """An empty database at the newest migration (SQLite in the test's tmp dir)."""
    d = Database(f"sqlite:///{tmp_path}/unit.db")
    d.upgrade()
    yield d
    d.dispose()
