"""SIGTERM or SIGINT while `serve` or `socket` is still starting (a PaaS restart may come mid-boot): the process
stops at once with exit status 0, says in one line that it stopped before it had started, and leaves nothing
half-written. Each test holds the bridge in one step of its start as a real server can: Letta not answering
`GET /app-server-info` yet, Slack rate-limiting `apps.connections.open`, another process holding the migration
lock of a Postgres database."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

STOPPED_EARLY = "stopped before it had started"
MIGRATION_LOCK = 0x6C657474_61000001  # bridge/store/postgres_connection.py's, taken first by every migration


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"not seen within {timeout}s: {what}")


def stopped_at_once(bridge: BridgeProcess, sig: int) -> None:
    """Signal the bridge; it exits 0 within seconds, its log ends with the one line and no traceback."""
    assert bridge.proc is not None and bridge.proc.poll() is None, bridge.logs()
    bridge.proc.send_signal(sig)
    started = time.monotonic()
    code = bridge.proc.wait(15)
    took = time.monotonic() - started
    logs = bridge.logs()
    assert code == 0, f"exit status {code}:\n{logs}"
    assert took < 5, f"took {took:.1f}s to stop:\n{logs}"
    assert "Traceback" not in logs and "Unclosed" not in logs and "Task was destroyed" not in logs, logs
    assert logs.count(STOPPED_EARLY) == 1, logs
    assert "bridge listening" not in logs and "bridge stopped\n" not in logs, logs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_signalled_while_letta_has_not_answered_yet_stops_with_0(sig: int, tmp_path: Path) -> None:
    db = tmp_path / "bridge.db"
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        letta.hang_next("GET", "/app-server-info")  # a Letta server still booting: its port open, no answer yet
        bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, db, LETTA_CONNECT_TIMEOUT="60"))
        bridge.start(tmp_path / "bridge.log", wait=False)
        try:
            wait_until(lambda: any(r.path == "/app-server-info" for r in letta.requests), "the Letta kind asked")
            stopped_at_once(bridge, sig)
        finally:
            bridge.stop()
    assert not db.exists(), "a start stopped before the database was opened created it"


def test_socket_signalled_while_slack_rate_limits_the_connection_stops_with_0(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        slack.fail_next("apps.connections.open", "ratelimited", headers={"retry-after": "60"})
        env = base_env(slack.api_url, "http://127.0.0.1:9", tmp_path / "bridge.db", SLACK_APP_TOKEN="xapp-1")
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            wait_until(lambda: "waiting 60 s" in bridge.logs(), "the rate limit waited out")
            stopped_at_once(bridge, signal.SIGTERM)
        finally:
            bridge.stop()


@contextmanager
def migration_lock_held(url: str) -> Iterator[None]:
    """Another process's migration in progress: the advisory lock every migration takes first, held."""
    taken, release = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    async def hold() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            taken.set()
            await asyncio.to_thread(release.wait)
        finally:
            await conn.close()

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:
            failed.append(exc)
            taken.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    taken.wait(15)
    assert not failed, failed
    try:
        yield
    finally:
        release.set()
        thread.join(15)


def test_serve_signalled_mid_migration_stops_with_0_and_leaves_no_schema(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.create_database()
    database = url.rsplit("/", 1)[1]
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", DATABASE_URL=url)
        with migration_lock_held(url):
            bridge = BridgeProcess(env).start(tmp_path / "bridge.log", wait=False)
            try:
                waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                wait_until(lambda: pg_server.psql(waiting, database) == "1", "the migration waiting for its lock")
                stopped_at_once(bridge, signal.SIGTERM)
            finally:
                bridge.stop()
        assert pg_server.psql("SELECT to_regclass('schema_version') IS NULL", database) == "t", "half a migration"
        again = BridgeProcess(env).start(tmp_path / "again.log")  # the next start migrates and serves as usual
        try:
            assert pg_server.psql("SELECT count(*) > 0 FROM schema_version", database) == "t"
        finally:
            assert again.stop() == 0, again.logs()
