"""pytest fixtures for lab tests. Import them into a test module:

    from tests.lab.fixtures import lab_factory  # noqa: F401
"""
from __future__ import annotations

import pytest

from tests.lab.lab import Lab


@pytest.fixture
def lab_factory():
    """lab_factory(hypervisors=2, controller=None, **Lab options) -> a started
    Lab, closed at teardown even when the test fails."""
    labs: list[Lab] = []

    def make(*args, **kwargs) -> Lab:
        lab = Lab(*args, **kwargs)
        labs.append(lab)
        return lab.start()

    yield make
    for lab in reversed(labs):
        lab.close()
