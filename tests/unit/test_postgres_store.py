"""What only the Postgres store does: URLs as PaaS add-ons write them, migrations raced by two processes, one
event accepted once across processes, and agent locks that hold across processes and die with them."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bridge.domain import AgentReply, Turn
from bridge.store import StoreError, open_store, postgres_connection
from bridge.store.database_url import display_url
from bridge.store.postgres import PostgresStore, connect_options
from bridge.store.postgres_connection import CONNECT_TIMEOUT
from bridge.store.schema import SQLITE_MIGRATIONS
from tests.pg import PgServer

LATEST = len(SQLITE_MIGRATIONS)  # the schema version a fresh database reaches


def test_paas_urls_keep_sslmode_and_lose_libpq_only_options() -> None:
    dsn, options = connect_options(
        "postgres://u:p@db.example.com:5432/d1?sslmode=require&channel_binding=require&connect_timeout=7"
    )
    assert dsn == "postgres://u:p@db.example.com:5432/d1"
    assert options == {"ssl": "require", "timeout": 7.0}
    assert connect_options("postgresql://u@h/d?application_name=x") == (
        "postgresql://u@h/d?application_name=x",
        {"timeout": CONNECT_TIMEOUT},
    )
    with pytest.raises(StoreError, match="sslmode=sometimes"):
        connect_options("postgres://h/d?sslmode=sometimes")


def test_both_schemes_pick_postgres_and_passwords_never_show() -> None:
    assert isinstance(open_store("postgres://u:p@h/d"), PostgresStore)
    assert isinstance(open_store("postgresql://u:p@h/d"), PostgresStore)
    assert display_url("postgres://user:s3cret@db.example.com:5432/d?sslmode=require") == (
        "postgres://user:***@db.example.com:5432/d?sslmode=require"
    )
    assert display_url("sqlite:///bridge.db") == "sqlite:///bridge.db"


def test_an_unreachable_or_refused_database_is_one_plain_line(pg_server: PgServer) -> None:
    async def main() -> None:
        store = open_store("postgres://bridge:hunter2@127.0.0.1:9/nothing")
        with pytest.raises(StoreError) as err:
            await store.open()
        assert "connection refused" in str(err.value) and "hunter2" not in str(err.value)
        missing = open_store(pg_server.url("no_such_database"))
        with pytest.raises(StoreError, match="does not exist"):
            await missing.open()

    asyncio.run(main())


def test_an_up_to_date_database_opens_without_the_migration_lock(pg_url: str) -> None:
    """Opening a database at the latest schema neither waits for the migration lock nor writes (so that a role that
    may not create tables opens it); a one-shot command (not serving) starts no heartbeat."""

    async def main() -> None:
        owner = open_store(pg_url)
        await owner.open()
        assert isinstance(owner, PostgresStore)
        try:
            async with owner.pool.acquire() as held, held.transaction():
                await held.execute("SELECT pg_advisory_xact_lock($1)", postgres_connection.MIGRATION_LOCK)
                one_shot = open_store(pg_url)
                await asyncio.wait_for(one_shot.open(), 5)
                try:
                    assert await one_shot.schema_version() == LATEST
                    assert isinstance(one_shot, PostgresStore) and one_shot._beating is None
                finally:
                    await one_shot.close()
        finally:
            await owner.close()

    asyncio.run(main())


@pytest.mark.slow
def test_two_processes_starting_at_once_migrate_once_and_accept_an_event_once(pg_url: str) -> None:
    async def main() -> None:
        stores = [open_store(pg_url) for _ in range(4)]
        await asyncio.gather(*(s.open() for s in stores))
        try:
            assert {await s.schema_version() for s in stores} == {LATEST}
            assert isinstance(stores[0], PostgresStore)
            assert await stores[0].pool.fetchval("SELECT count(*) FROM schema_version") == LATEST - 1
            for thread in range(10):
                made = [f"conv-{thread}-{n}" for n in range(len(stores))]
                puts = [s.put_conversation(("T1", "C1", f"{thread}.0"), "agent-a", c) for s, c in zip(stores, made)]
                kept = await asyncio.gather(*puts)
                assert len(set(kept)) == 1 and kept[0] in made  # racing processes all get the one stored
            turn = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", event_id="EvRACE")
            ids = await asyncio.gather(*(s.accept_turn(turn, f"otid-{n}") for n, s in enumerate(stores)))
            assert len([i for i in ids if i is not None]) == 1
            twin = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", event_id="EvTWIN")
            assert await stores[1].accept_turn(twin, "otid-x") is None
            claims = await asyncio.gather(*(s.claim_binding("T1", "C1", f"web.{n}", 30) for n, s in enumerate(stores)))
            assert claims.count(True) == 1
        finally:
            await asyncio.gather(*(s.close() for s in stores))

    asyncio.run(main())


def test_agent_locks_hold_across_processes_and_die_with_their_holder(pg_url: str) -> None:
    async def main() -> None:
        first, second = PostgresStore(pg_url, alive_seconds=1.0), PostgresStore(pg_url, alive_seconds=1.0)
        await first.open(), await second.open()
        try:
            order: list[str] = []

            async def send(store: PostgresStore | object, agents: list[str], name: str, hold: float) -> None:
                assert isinstance(store, PostgresStore)
                async with store.agent_lock(agents):
                    order.append(f"{name} in")
                    await asyncio.sleep(hold)
                    order.append(f"{name} out")

            # bob is shared: the group send [alice, bob] and the send to bob never overlap; carol is free.
            started = time.monotonic()
            await asyncio.gather(
                send(first, ["agent-bob", "agent-alice"], "group", 0.4),
                send(second, ["agent-bob"], "bob", 0.1),
                send(second, ["agent-carol"], "carol", 0.1),
            )
            assert order.index("group out") < order.index("bob in") or order.index("bob out") < order.index("group in")
            assert order.index("carol out") < order.index("group out"), "an unrelated agent waited"
            assert time.monotonic() - started >= 0.5

            # A holder whose process was killed (its connection dies, its heartbeat stops) frees the lock as soon as
            # its heartbeat has run out: until then the send it made may still be running at Letta.
            holding = asyncio.Event()

            async def hold_forever() -> None:
                async with first.agent_lock(["agent-dora"]):
                    holding.set()
                    await asyncio.sleep(60)

            holder = asyncio.create_task(hold_forever())
            await holding.wait()
            assert isinstance(first, PostgresStore) and first._beating is not None
            first._beating.cancel()
            await second.pool.execute(  # type: ignore[attr-defined]
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype='advisory' AND pid<>pg_backend_pid()"
            )
            async with asyncio.timeout(5):
                async with second.agent_lock(["agent-dora"]):
                    pass
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
        finally:
            await first.close(), await second.close()

    asyncio.run(main())


def test_agents_answering_at_once_each_get_their_transcript_number(pg_url: str) -> None:
    """A broadcast asks its agents at once and journals each answer with its transcript move as it comes; each
    number was the binding's last plus one, read under Postgres's default isolation, so two answers at the same
    moment took the same one and the second failed the turn (UniqueViolationError)."""

    async def main() -> list[object]:
        store = open_store(pg_url)
        await store.open()
        try:
            failed: list[object] = []
            for n in range(20):
                results = await asyncio.gather(
                    *(
                        store.step_answered(
                            n, agent, [AgentReply(agent, f"hi from {agent}", agent)], None, ("T1", f"C{n}", agent, 0)
                        )
                        for agent in ("a1", "a2", "a3")
                    ),
                    return_exceptions=True,
                )
                failed += [r for r in results if isinstance(r, BaseException)]
            return failed
        finally:
            await store.close()

    assert asyncio.run(main()) == []


def test_a_send_whose_lock_connection_the_server_ended_still_returns_its_reply(pg_url: str) -> None:
    """Postgres restarted (or ended the session) while a Letta send held an agent lock: the send's reply arrived
    all the same, but leaving the lock raised InterfaceError (the connection was already back in the pool), so
    the turn crashed and the agent's answer never reached Slack. Nothing is held any more: leaving is quiet."""

    async def main() -> None:
        store, other = open_store(pg_url), open_store(pg_url)
        await store.open(), await other.open()
        assert isinstance(store, PostgresStore) and isinstance(other, PostgresStore)
        try:
            async with store.agent_lock(["agent-erin"]):
                await other.pool.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype='advisory' AND pid<>pg_backend_pid()"
                )
                await asyncio.sleep(0.3)  # the server's goodbye reaches the holder's connection
                reply = "erin's answer"
            assert reply == "erin's answer"
            async with asyncio.timeout(5), store.agent_lock(["agent-erin"]):  # the lock's pool still serves
                pass
        finally:
            await store.close(), await other.close()

    asyncio.run(main())


def test_a_database_that_never_answers_is_said_in_time_for_the_platform(tmp_path: object) -> None:
    """A host that takes the connection but never answers (a firewall, a Postgres stuck in its restart): asyncpg
    waited 60 s, so `check` hung a minute and `serve` was killed by the platform's boot timeout (Heroku's R10 at
    60 s) before it could say why. Without `connect_timeout` in the URL, the bridge gives up sooner, in words."""

    async def main() -> None:
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        try:
            store = open_store(f"postgres://u:pw@127.0.0.1:{port}/db?sslmode=disable")
            started = time.monotonic()
            with pytest.raises(StoreError, match="no answer in time"):
                async with asyncio.timeout(30):
                    await store.open()
            assert time.monotonic() - started < 15
        finally:
            silent.close()

    asyncio.run(main())


async def held(store: PostgresStore, agent_id: str) -> asyncio.Task[None]:
    """A task holding the agent's lock in `store` (a minute, or until cancelled), once it holds it."""
    holding = asyncio.Event()

    async def hold() -> None:
        async with store.agent_lock([agent_id]):
            holding.set()
            await asyncio.sleep(60)

    holder = asyncio.create_task(hold())
    await holding.wait()
    return holder


def test_an_agent_lock_is_taken_from_a_process_whose_heartbeat_ran_out_and_only_then(pg_url: str) -> None:
    """A process frozen (or whose host vanished, its connections left open) keeps its sessions, and PostgreSQL its
    advisory locks, for hours. Before: every later send to the agent, from any process, waited on the lock until
    its turn's deadline."""

    async def main() -> None:
        frozen = PostgresStore(pg_url, alive_seconds=1.0)
        other = PostgresStore(pg_url, alive_seconds=1.0)
        await frozen.open(), await other.open()
        try:
            holder = await held(frozen, "agent-fay")
            with pytest.raises(TimeoutError):  # a live holder keeps its lock, however long the wait
                async with asyncio.timeout(3.5), other.agent_lock(["agent-fay"]):
                    pass
            assert frozen._beating is not None
            frozen._beating.cancel()  # frozen: its heartbeat stops, its session stays
            async with asyncio.timeout(6), other.agent_lock(["agent-fay"]):
                pass
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
        finally:
            await frozen.close(), await other.close()

    asyncio.run(main())


def test_a_bridge_in_another_schema_of_the_database_never_takes_a_live_holders_agent_lock(
    pg_server: PgServer, pg_url: str
) -> None:
    """Two deployments in two schemas of one database (`options=-csearch_path=…`), sharing a Letta agent: the
    waiting one looked for the holder's heartbeat in its own schema, found none, ended the live holder's session,
    and sent to the agent while the other's send was still running."""
    name = pg_url.rsplit("/", 1)[1]
    pg_server.psql("CREATE SCHEMA s1; CREATE SCHEMA s2;", database=name)

    async def main() -> None:
        first = PostgresStore(f"{pg_url}?options=-csearch_path%3Ds1", alive_seconds=1.0)
        second = PostgresStore(f"{pg_url}?options=-csearch_path%3Ds2", alive_seconds=1.0)
        await first.open(), await second.open()
        try:
            holder = await held(first, "agent-ida")
            with pytest.raises(TimeoutError):  # a live holder keeps its lock, whichever schema it keeps its tables in
                async with asyncio.timeout(4), second.agent_lock(["agent-ida"]):
                    pass
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
        finally:
            await first.close(), await second.close()

    asyncio.run(main())


def test_a_send_whose_lock_a_restart_freed_keeps_the_agent_from_another_process(pg_url: str) -> None:
    """The database restarted (every session ended) while a send was at Letta: its advisory lock is gone, its
    record is not, and another live process waits for the send to end before asking the agent."""

    async def main() -> None:
        first = PostgresStore(pg_url, alive_seconds=30.0)
        second = PostgresStore(pg_url, alive_seconds=30.0)
        await first.open(), await second.open()
        try:
            holding, done = asyncio.Event(), asyncio.Event()

            async def send() -> None:
                async with first.agent_lock(["agent-gus"]):
                    holding.set()
                    await done.wait()

            sending = asyncio.create_task(send())
            await holding.wait()
            await second.pool.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype='advisory' AND pid<>pg_backend_pid()"
            )
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(3.0), second.agent_lock(["agent-gus"]):
                    pass
            done.set()
            await sending
            async with asyncio.timeout(5), second.agent_lock(["agent-gus"]):
                pass
        finally:
            await first.close(), await second.close()

    asyncio.run(main())


def test_a_pool_whose_close_fails_neither_stops_the_others_closing_nor_fails_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A pool's close raised (a connection reset by a database going away under the stop). Before, the error left
    `close` at once: the pools after it were never closed, and the stop ended in a traceback and exit status 1
    instead of 0."""
    class Pool:
        def __init__(self, fails: bool) -> None:
            self.fails, self.closed, self.ended = fails, False, False

        def get_size(self) -> int:
            return 1

        def get_idle_size(self) -> int:
            return 1

        async def close(self) -> None:
            if self.fails:
                self.ended = True  # asyncpg's close ends the pool's connections before it raises
                raise ConnectionResetError("connection reset by peer")
            self.closed = True

        def terminate(self) -> None:
            self.ended = True

    async def main() -> list[Pool]:
        store = PostgresStore("postgresql://bridge@127.0.0.1:1/none")
        pools = [Pool(fails=True), Pool(False), Pool(False), Pool(False)]
        store._accepts, store._renewals, store._locks, store._pool = pools  # type: ignore[assignment]
        await store.close()
        return pools

    with caplog.at_level(logging.WARNING, logger=postgres_connection.__name__):
        failing, *others = asyncio.run(main())
    assert failing.ended and all(p.closed for p in others)
    assert any("did not close cleanly" in r.getMessage() and "pool=accepts" in r.getMessage() for r in caplog.records)
