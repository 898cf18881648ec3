"""Fixtures of the unit tests that drive Letta-side code against a fake server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta


@pytest.fixture
def letta() -> Iterator[FakeLetta]:
    """A fake Letta 0.16.8 (the bridge runner's and conversations' server) on loopback."""
    fake = FakeLetta(version="0.16.8")
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake() -> Iterator[FakeAppServer]:
    """A fake Letta App Server on loopback, its turns' delays scaled down."""
    server = FakeAppServer(scale=0.001)
    server.start()
    yield server
    server.stop()
