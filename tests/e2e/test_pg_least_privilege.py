"""A Postgres database already at the latest schema, used through a role that may read and write its rows but not
create tables (the owner runs migrations: PostgreSQL 15's default for a role that does not own the schema), or set
read-only: opening the store writes nothing then, as SQLite's up-to-date file is not locked to open; only a serving
process keeps a heartbeat row."""

from __future__ import annotations

import asyncio
import itertools
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bridge.domain import AgentRef, Binding, Target
from bridge.store.database_url import open_store
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

_roles = itertools.count(1)


def _bind(url: str, channel: str) -> None:
    """The owner's open migrates the database; it connects a channel."""

    async def go() -> None:
        store = open_store(url)
        await store.open()
        try:
            target = Target(kind="agents", group_id=None, agents=(AgentRef("agent-1", "alice"),))
            await store.put_binding(Binding("T0123ABCD", channel, target, "auto", "U1", datetime.now(UTC)))
        finally:
            await store.close()

    asyncio.run(go())


def _role_without_create(pg_server: PgServer, url: str) -> str:
    """A login role that reads and writes every table of the database at `url` but may create none; its URL."""
    role = f"rows_{os.getpid()}_{next(_roles)}"
    name = url.rsplit("/", 1)[1]
    pg_server.psql(f"CREATE ROLE {role} LOGIN")
    for sql in (
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ):
        pg_server.psql(sql, name)
    return url.replace("//bridge@", f"//{role}@")


def _heartbeats(pg_server: PgServer, url: str) -> int:
    return int(pg_server.psql("SELECT count(*) FROM bridge_processes", url.rsplit("/", 1)[1]))


def test_channels_list_and_disconnect_through_a_role_without_create(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.create_database()
    _bind(url, "C0LIST")
    _bind(url, "C0GONE")
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    env["DATABASE_URL"] = _role_without_create(pg_server, url)
    listed = run_cli(env, "channels", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "C0LIST" in listed.stdout, (listed.stdout, listed.stderr)
    gone = run_cli(env, "channels", "disconnect", "C0GONE", "--team", "T0123ABCD", cwd=tmp_path)
    assert gone.returncode == 0 and "disconnected C0GONE" in gone.stdout, (gone.stdout, gone.stderr)
    assert _heartbeats(pg_server, url) == 0  # a one-shot command keeps no heartbeat: it takes no agent lock


def test_channels_list_on_a_read_only_database(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.create_database()
    _bind(url, "C0LIST")
    pg_server.psql(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET default_transaction_read_only = on")
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    env["DATABASE_URL"] = url
    done = run_cli(env, "channels", "list", cwd=tmp_path)
    assert done.returncode == 0 and "C0LIST" in done.stdout, (done.stdout, done.stderr)


def test_serve_through_a_role_without_create_keeps_its_heartbeat(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.create_database()
    _bind(url, "C0LIST")
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db")
        env["DATABASE_URL"] = _role_without_create(pg_server, url)
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            assert httpx.get(f"{bridge.url}/readyz", timeout=5).status_code == 200
            assert _heartbeats(pg_server, url) == 1  # what lets another process take a frozen one's agent locks
        finally:
            bridge.stop()
