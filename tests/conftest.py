"""Fixtures shared by the unit and end-to-end suites: a throwaway PostgreSQL server for the whole session, and
`database_url`, which runs a test once per backend (a fresh SQLite file, then a fresh Postgres database)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401 (imported now, not at the session's end: see below)
import pytest

from tests.pg import NO_BINARIES, PgServer

# pytest rewrites hypothesis's modules when it is first imported. Left to its plugin's terminal summary, that
# import can meet the log of a task whose exception nobody read, whose traceback parses source too: CPython 3.11's
# parser then fails the whole run with "AST constructor recursion depth mismatch" after every test passed.


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Two workers per core for `-n auto`: most of an end-to-end test's time is spent waiting on a subprocess or a
    fake's timer, so one worker per core leaves the cores half idle."""
    return 2 * (os.cpu_count() or 1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer.find()
    if server is None:
        if os.environ.get("CI"):  # .ci/run installs them: in CI a missing server is a failure, not a skip
            pytest.fail(NO_BINARIES)
        pytest.skip(NO_BINARIES)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty Postgres database."""
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.db'}"
    return str(request.getfixturevalue("pg_url"))
