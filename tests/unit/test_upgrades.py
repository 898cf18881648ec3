"""An older bridge's database, with data in it, opened by this version: migrated to the latest schema, nothing lost,
the unfinished turns found once (the running one with its journal, so no agent is asked again); a database from a
newer bridge refused untouched (tests/unit/old_databases.py builds the older ones)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from bridge.domain import AgentRef, AgentReply, Turn
from bridge.store import Store, StoreError, open_store
from bridge.store.approvals import ApprovalStore
from bridge.store.feedback import FeedbackStore
from bridge.store.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from bridge.store.sql import Sql
from tests.pg import PgServer
from tests.unit.old_databases import AT, OldRows, old_database

LATEST = len(SQLITE_MIGRATIONS)
SQLITE_VERSIONS = range(1, LATEST)
POSTGRES_VERSIONS = range(min(POSTGRES_MIGRATIONS), LATEST)  # Postgres began at v2


def run(url: str, body: Callable[[Store], Awaitable[None]]) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(main())


async def count(store: Store, table: str) -> int:
    rows = await Sql(store).fetch(f"SELECT count(*) AS n FROM {table}")
    return int(rows[0]["n"])


def upgraded(version: int, old: OldRows) -> Callable[[Store], Awaitable[None]]:
    async def check(store: Store) -> None:
        assert await store.schema_version() == LATEST
        bindings = {b.channel_id: b for b in await store.list_bindings()}
        assert set(bindings) == ({"C1", "C2", "C3"} if version >= 9 else {"C1", "C2"})
        crew = bindings["C1"].target
        assert (crew.kind, crew.group_id, crew.agents, crew.description) == (
            "group",
            "group-1",
            (AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob")),
            "crew",
        )
        assert crew.manager is None and crew.max_turns is None
        assert (bindings["C2"].runner, bindings["C2"].bound_by) == ("bridge", "U2")
        if version >= 9:
            assert bindings["C3"].target.manager == AgentRef("agent-boss", "boss")
            assert bindings["C3"].target.termination_token == "DONE"
        [entry] = await store.history("T1", "C1")
        assert entry.pattern == ""  # written before v18: said with its ids alone

        # The unfinished turns, each once, oldest first; the finished one is not among them.
        pending = await store.unfinished_turns()
        assert [p.turn_id for p in pending] == [old.running, old.queued, old.other]
        assert [p.started for p in pending] == [True, False, False]
        assert pending[0].otid == "00000000-0000-4000-8000-000000000001"
        nxt = await store.next_turn("T1", "C1")
        assert nxt is not None and nxt.turn_id == old.running
        assert await store.count_unfinished() == 3 and await store.count_unfinished("T1", "C1") == 2
        assert await store.waiting_threads("T1", "C1") == ["2.000001"]
        assert sorted(await store.orphaned_bindings()) == [("T1", "C1"), ("T1", "C2")]
        # A retried event for an old message is still a duplicate; a new one is numbered after the old rows.
        again = Turn("T1", "C1", "2.000001", "2.000001", "U1", "question 1", event_id="Ev1")
        assert await store.accept_turn(again, "otid-x") is None
        fresh = await store.accept_turn(Turn("T1", "C1", "5.000001", "5.000001", "U1", "new", event_id="Ev9"), "o")
        assert fresh is not None and fresh > old.other
        assert await store.notice_once("T1", "C1", "route_missing") is False

        unseen, _ = await store.unseen("T1", "C1", "agent-b", from_start=True)
        assert unseen == [AgentReply("alice", "hi from alice", "agent-a")]
        # A transcript row from before v15 has no time of its own: it counts from the upgrade, not from long ago.
        [written] = await Sql(store).fetch("SELECT at FROM transcript")
        at = datetime.fromisoformat(written["at"]) if isinstance(written["at"], str) else written["at"]
        assert abs(datetime.now(UTC) - at) < timedelta(minutes=5) if version < 15 else at == AT
        # The old turns stay the thread's own; a thread retention deleted the answered turns of counts too (v16).
        assert await store.earlier_turns_in_thread("T1", "C1", "2.000001", fresh) == (1 if version >= 2 else 0)
        assert await store.earlier_turns_in_thread("T1", "C1", "8.000001", fresh) == (1 if version >= 16 else 0)
        if version >= 2:  # the running turn's journal and outbox: answered steps replay, posted parts stay posted
            step = await store.get_step(old.running, "agent-a")
            assert step is not None and step.state == "answered"
            assert [r.text for r in step.replies] == ["hi from alice"]
            assert await store.sending_steps(old.running) == {"agent-b": ""}  # its run not reported before v21
            await store.step_run(old.running, "agent-b", "run-b")  # the run its send reported, from v21 on
            assert await store.sending_steps(old.running) == {"agent-b": "run-b"}
            [owed] = await store.outbox_pending(old.running)
            assert (owed.text, owed.posted) == ("hi from alice", frozenset({0}))
            assert await store.outbox_pending(old.done) == []
        if version >= 3:
            assert await store.conversation(("T1", "C1", "2.000001"), "agent-a") == "conv-a"
        if version >= 4:
            assert await store.first_signature("v0=seen", 4_000_000_000.0) is False
        if version >= 5:
            for table in ("slack_installations", "slack_workspaces", "bridge_secrets", "oauth_states"):
                assert await count(store, table) == 1, table
        if version >= 6:
            [votes] = await FeedbackStore(store).counts("T1", "C1")
            assert (votes.agent_name, votes.up) == ("alice", 1)
        if version >= 8:
            [approval] = await ApprovalStore(store).for_turn(old.running)
            assert approval.id == old.approval and approval.card_ts == "2.000003"
            assert [a.id for a in await ApprovalStore(store).open_in("T1", "C1")] == [old.approval]
        other = next(p for p in pending if p.turn_id == old.other)
        assert [f.name for f in other.turn.files] == (["notes.txt"] if version >= 10 else [])

    return check


def upgrade(url: str, version: int) -> None:
    old = asyncio.run(old_database(url, version))
    run(url, upgraded(version, old))
    run(url, _reopened)


async def _reopened(store: Store) -> None:
    """A second start finds the latest schema and migrates nothing again."""
    assert await store.schema_version() == LATEST


@pytest.mark.parametrize("version", SQLITE_VERSIONS)
def test_an_older_sqlite_database_with_data_is_migrated_without_loss(tmp_path: Path, version: int) -> None:
    upgrade(f"sqlite:///{tmp_path / 'bridge.db'}", version)


@pytest.mark.parametrize("version", POSTGRES_VERSIONS)
def test_an_older_postgres_database_with_data_is_migrated_without_loss(pg_server: PgServer, version: int) -> None:
    upgrade(pg_server.create_database(), version)


def snapshot(url: str, pg_server: PgServer | None) -> object:
    """Everything a start could change: the SQLite file's bytes (and its WAL's), or Postgres's tables and rows."""
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///"))
        return [p.read_bytes() if p.exists() else None for p in (path, Path(f"{path}-wal"))]
    assert pg_server is not None
    name = url.rsplit("/", 1)[1]
    return [
        pg_server.psql(
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname='public'", name
        ),
        pg_server.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version", name),
        pg_server.psql(
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname='public'", name
        ),
        pg_server.psql("SELECT count(*) FROM turns", name),
    ]


def newer(url: str) -> None:
    """The latest schema, then what a later bridge would add: a version above this one's, a table of its own."""
    run(url, _reopened)

    async def later() -> None:
        if url.startswith("sqlite:"):
            with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
                db.execute("CREATE TABLE later (x TEXT)")
                db.execute(f"PRAGMA user_version={LATEST + 1}")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        db = await asyncpg.connect(url)
        try:
            await db.execute("CREATE TABLE later (x TEXT)")
            await db.execute("INSERT INTO schema_version (version) VALUES ($1)", LATEST + 1)
        finally:
            await db.close()

    asyncio.run(later())


@pytest.mark.parametrize("migrate", [True, False], ids=["serve", "check"])
def test_a_database_from_a_newer_bridge_is_refused_in_one_sentence_and_left_as_it_was(
    database_url: str, request: pytest.FixtureRequest, migrate: bool
) -> None:
    """Rolled back to an older release (or an older checkout pointed at production), the bridge found tables it did
    not know and ran on them as if they were its own."""
    pg = request.getfixturevalue("pg_server") if database_url.startswith("postgres") else None
    newer(database_url)
    before = snapshot(database_url, pg)

    async def start() -> str:
        store = open_store(database_url, migrate=migrate)
        try:
            await store.open()
        except StoreError as exc:
            return str(exc)
        try:
            version = await store.schema_version()
        finally:
            await store.close()
        return f"opened at v{version}"

    said = asyncio.run(start())
    if migrate:
        assert f"v{LATEST + 1}" in said and "newer" in said and "\n" not in said, said
    else:  # `check` opens it to say which version it is (tests/e2e/test_check.py)
        assert said == f"opened at v{LATEST + 1}"
    assert snapshot(database_url, pg) == before


SLOW = {  # a statement that keeps the migration's transaction open until the process is killed
    "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n",
    "postgres": "SELECT pg_sleep(4)",  # PostgreSQL ends a dead client's statement only when it returns
}
MIGRATING = """
import asyncio, sys
from bridge.store import open_store, postgres_connection, sqlite_connection
from bridge.store.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
url, slow = sys.argv[1], sys.argv[2]
cut = len(SQLITE_MIGRATIONS) - 2  # v9 applied, then the process dies inside v10
sqlite_connection.MIGRATIONS = [*SQLITE_MIGRATIONS[:cut], SQLITE_MIGRATIONS[cut] + ";" + slow]
postgres_connection.MIGRATIONS = {**{v: s for v, s in POSTGRES_MIGRATIONS.items() if v < cut + 1},
                                  cut + 1: POSTGRES_MIGRATIONS[cut + 1] + ";" + slow}
print("migrating", flush=True)
asyncio.run(open_store(url).open())
"""


def test_a_migration_killed_midway_leaves_the_old_version_and_the_next_start_completes(database_url: str) -> None:
    """Killed (a deploy's SIGKILL, the OOM killer) inside a migration: the database is left at the version it had,
    whole, and the next start applies every migration and finds the older rows."""
    old = asyncio.run(old_database(database_url, LATEST - 4))
    backend = "sqlite" if database_url.startswith("sqlite:") else "postgres"
    child = subprocess.Popen(
        [sys.executable, "-c", MIGRATING, database_url, SLOW[backend]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "migrating"
        time.sleep(1.5)
        assert child.poll() is None, "the migration ended before it was killed"
    finally:
        child.kill()
        child.wait()
    run(database_url, upgraded(LATEST - 4, old))


def test_processes_starting_at_once_on_an_older_postgres_database_migrate_it_once(pg_server: PgServer) -> None:
    """Several processes of a deploy start together on the old database: one migrates, the others wait for its
    lock and find nothing left to do; none fails, and the rows are there once."""
    url = pg_server.create_database()
    old = asyncio.run(old_database(url, min(POSTGRES_MIGRATIONS)))

    async def starts() -> None:
        stores = [open_store(url) for _ in range(4)]
        await asyncio.gather(*(store.open() for store in stores))
        try:
            assert [await store.schema_version() for store in stores] == [LATEST] * 4
            assert await count(stores[0], "schema_version") == len(POSTGRES_MIGRATIONS)
        finally:
            await asyncio.gather(*(store.close() for store in stores))

    asyncio.run(starts())
    run(url, upgraded(min(POSTGRES_MIGRATIONS), old))
