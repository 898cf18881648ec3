"""Postgres agent locks across processes when the database is slow or a connection goes silent: a live process's
sends keep the agent from the others, and a send that has ended never keeps it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg
import pytest

from bridge.store import postgres_connection, postgres_locks
from bridge.store.leases import BindingLeases
from bridge.store.postgres import PostgresStore


def test_a_send_cancelled_while_its_record_was_being_deleted_leaves_the_agent_free(pg_url: str) -> None:
    """The turn was cancelled (a Stop, its deadline, its lease lost, a shutdown) just as its finished send's
    `agent_sends` row was being deleted on a slow database. Before, the row stayed while its process lived, and
    every other process's send to that agent waited for it until its turn's deadline."""

    async def main() -> None:
        first = PostgresStore(pg_url, alive_seconds=1.5)
        second = PostgresStore(pg_url, alive_seconds=1.5)
        await first.open(), await second.open()
        slow = await asyncpg.connect(pg_url)
        try:
            deleting = asyncio.Event()

            async def send() -> None:
                async with first.agent_lock(["agent-ida"]):
                    await slow.execute("BEGIN")  # the database is slow to delete the send's row
                    await slow.execute("SELECT 1 FROM agent_sends FOR UPDATE")
                    deleting.set()

            sending = asyncio.create_task(send())
            await deleting.wait()
            await asyncio.sleep(0.3)  # the send has ended: its row's deletion waits
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            await slow.execute("ROLLBACK")
            async with asyncio.timeout(6), second.agent_lock(["agent-ida"]):  # `first` lives on, sending nothing
                pass
        finally:
            await slow.close()
            await first.close(), await second.close()

    asyncio.run(main())


def test_a_send_cut_short_leaves_its_record_for_the_next_process_to_send_to_the_agent(pg_url: str) -> None:
    """A send cut short (its turn stopped or past its deadline, its process stopped past its grace) goes on at
    Letta. Before, its record was deleted with the lock, and another live process asked the agent without looking
    at its runs; now the next holder takes the record over (its agent is unsettled there), once."""

    async def main() -> None:
        first = PostgresStore(pg_url, alive_seconds=30.0)
        second = PostgresStore(pg_url, alive_seconds=30.0)
        await first.open(), await second.open()
        try:
            async with first.agent_lock(["agent-gus"]) as left:
                assert left == set()
            with contextlib.suppress(asyncio.CancelledError):
                async with first.agent_lock(["agent-gus"]):
                    raise asyncio.CancelledError  # a Stop mid-send
            async with asyncio.timeout(3), second.agent_lock(["agent-gus"]) as left:  # `first` lives on
                assert left == {"agent-gus"}, "the send cut short was not handed on"
            async with second.agent_lock(["agent-gus"]) as left:
                assert left == set()
        finally:
            await first.close(), await second.close()

    asyncio.run(main())


class Silencer:
    """A TCP relay in front of the database whose open connections can go silent, as one a NAT or a load balancer
    dropped without a word does: nothing more is relayed either way and nothing is closed. Later ones relay, unless
    the whole path went silent (`later_too`)."""

    def __init__(self, host: str, port: int) -> None:
        self._to = (host, port)
        self._quiet = False
        self._open: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream, downstream = await asyncio.open_connection(*self._to)
        heard = asyncio.Event()
        if not self._quiet:
            heard.set()
        self._open.append(heard)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                await heard.wait()
                sink.write(data)
                await sink.drain()

        try:
            await asyncio.gather(pump(reader, downstream), pump(upstream, writer))
        finally:
            writer.close()
            downstream.close()

    def _start(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def silence(self, later_too: bool = False) -> None:
        self._quiet = later_too
        for heard in self._open:
            heard.clear()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._start, "127.0.0.1", 0)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


def test_a_heartbeat_whose_connection_went_silent_goes_on_and_the_process_keeps_its_locks(pg_url: str) -> None:
    """A pooled connection went silent (a NAT or load balancer dropped it) and the heartbeat's renewal was sent on
    it. Before, the renewal waited for an answer that never came (asyncpg's pool waits for a cancelled query's
    acknowledgement) and the heartbeat stopped for good while the process went on sending: another process ended
    its agent lock's session and asked the agent while the first send was still running."""

    async def main() -> None:
        where = urlsplit(pg_url)
        relay = Silencer(where.hostname or "127.0.0.1", where.port or 5432)
        async with relay.serving() as port:
            first = PostgresStore(where._replace(netloc=f"{where.username}@127.0.0.1:{port}").geturl(), alive_seconds=3)
            second = PostgresStore(pg_url, alive_seconds=3.0)
            await first.open(), await second.open()
            try:
                relay.silence()  # first's open connections: its heartbeat's next renewal goes on one of them
                holding = asyncio.Event()

                async def send() -> None:
                    async with first.agent_lock(["agent-jo"]):
                        holding.set()
                        await asyncio.sleep(60)

                sending = asyncio.create_task(send())
                await holding.wait()
                with pytest.raises(TimeoutError):  # a live process's send keeps the agent, beyond its heartbeat
                    async with asyncio.timeout(9), second.agent_lock(["agent-jo"]):
                        pass
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
            finally:
                await second.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await first.close()  # its connections ended with the relay

    asyncio.run(main())


def test_a_lease_whose_connection_went_silent_is_claimed_kept_and_let_go_in_time(pg_url: str) -> None:
    """The lease's claim, a renewal or its release went out on a pooled connection gone silent. Before, the claim
    and the release waited for good (asyncpg's pool waits for a cancelled query's acknowledgement): the binding's
    worker never ended, so the process ran none of the channel's turns again; a renewal stopped its keeper, and
    the lease of a healthy process ran out."""

    async def main() -> None:
        where = urlsplit(pg_url)
        relay = Silencer(where.hostname or "127.0.0.1", where.port or 5432)
        async with relay.serving() as port:
            store = PostgresStore(where._replace(netloc=f"{where.username}@127.0.0.1:{port}").geturl())
            other = PostgresStore(pg_url)
            await store.open(), await other.open()
            # A 6 s lease: each renewal on a silent connection waits 1 s before it is tried on another, and the
            # pool may hand out several silent ones; with 3 s a loaded machine (CI's) lost the lease in the meantime.
            leases = BindingLeases(store, 6.0, owner="web.1")
            try:
                relay.silence()
                claiming = asyncio.create_task(held_once(leases))
                done, _ = await asyncio.wait({claiming}, timeout=5)
                assert done, "the claim waited on a silent connection"
                with pytest.raises(TimeoutError):  # given up, not waited on: the sweep comes back for the binding
                    claiming.result()

                async def run() -> None:
                    async with leases.hold("T1", "C1") as held:
                        assert held
                        relay.silence()  # the next renewal goes out on the connection the claim was made on
                        await asyncio.sleep(7.5)  # past the lease: kept only by renewals
                        assert not await other.claim_binding("T1", "C1", "web.2", 6.0), "a live process lost its lease"
                        relay.silence()  # and the release on a silent connection too

                running = asyncio.create_task(run())
                done, _ = await asyncio.wait({running}, timeout=15)
                assert done, "the binding's worker never ended: its lease's release waited on a silent connection"
                running.result()
            finally:
                await other.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await store.close()

    asyncio.run(main())


async def held_once(leases: BindingLeases) -> None:
    async with leases.hold("T1", "C1"):
        pass


def test_a_send_whose_connections_went_silent_ends_and_keeps_its_reply(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database failed over (or a NAT dropped the flows) while a send held its agent lock: every connection the
    process had open went silent. Before, leaving the lock waited for good on a pooled connection (the send's row
    deleted there once its own connection did not answer): the reply Letta gave was never posted, and the turn
    ended at its deadline."""
    monkeypatch.setattr(postgres_locks, "UNLOCK_TIMEOUT", 0.5)

    async def main() -> None:
        where = urlsplit(pg_url)
        relay = Silencer(where.hostname or "127.0.0.1", where.port or 5432)
        async with relay.serving() as port:
            store = PostgresStore(where._replace(netloc=f"{where.username}@127.0.0.1:{port}").geturl())
            await store.open()

            async def send() -> str:
                async with store.agent_lock(["agent-kit"]):
                    relay.silence()
                    return "kit's answer"

            sending = asyncio.create_task(send())
            done, _ = await asyncio.wait({sending}, timeout=6)
            assert done, "the send never left its agent lock"
            assert sending.result() == "kit's answer"
            assert store._sends.left, "its row is left to the heartbeat"
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await store.close()

    asyncio.run(main())


def test_a_retention_pass_on_a_connection_gone_silent_neither_hangs_nor_holds_up_the_stop(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hourly retention pass (FINISHED_TURNS_DAYS) read its window on a pooled connection gone silent. Before,
    it waited for good, holding the connection: no pass ran again, and a SIGTERM's stop, which ends the pruner
    before it gives the turns their grace, waited on it too, until the platform killed the process with its turns
    not drained. Now the window's work is bounded (postgres_locks.bounded) and a stop ends it at once."""
    from bridge.pruner import Pruner, Timing
    from bridge.store import retention

    monkeypatch.setattr(retention, "WINDOW_WITHIN", 1.0)

    async def main() -> None:
        where = urlsplit(pg_url)
        relay = Silencer(where.hostname or "127.0.0.1", where.port or 5432)
        async with relay.serving() as port:
            store = PostgresStore(where._replace(netloc=f"{where.username}@127.0.0.1:{port}").geturl())
            await store.open()
            try:
                relay.silence()  # the event ids' deletion goes out on one of the pool's open connections
                seen = asyncio.create_task(retention.Retention(store).prune_seen(90))
                done, _ = await asyncio.wait({seen}, timeout=5)
                assert done, "the event ids' deletion waited on a silent connection"
                assert isinstance(seen.exception(), TimeoutError)  # read: never left to the garbage collector's log
                await store.pool.expire_connections()
                await asyncio.gather(*(store.pool.fetchval("SELECT 1") for _ in range(3)))  # opened after it
                # the pass's window is read on one of the pool's open connections, or on one asyncpg opens in the
                # background to keep its pool's floor: that path is silent too
                relay.silence(later_too=True)
                pruner = Pruner(store, 90, Timing(first_after=0.0, every=3600.0, pause=0.0))
                passing = asyncio.create_task(pruner.run_once())
                done, _ = await asyncio.wait({passing}, timeout=5)
                assert done, "the retention pass waited on a silent connection"
                assert isinstance(passing.exception(), TimeoutError)  # logged by the hourly loop, tried next hour
                relay.silence(later_too=True)
                pruner.start()
                await asyncio.sleep(0.3)
                stopping = asyncio.create_task(pruner.stop())
                done, _ = await asyncio.wait({stopping}, timeout=5)
                assert done, "the stop waited on the retention pass's silent connection"
            finally:
                relay.silence()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await store.close()

    asyncio.run(main())


def test_a_stop_whose_connection_is_stuck_in_a_query_closes_the_store_in_time(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A SIGTERM's stop came while a connection was still in a long query (a turn's clean-up cut short, a slow
    database). Before, closing the store waited for that connection to be released (asyncpg's `Pool.close`), and
    `serve` outlived its SIGTERM until the query ended, or for ever; now the pools' close is bounded, what is left
    is ended, a line says so, and the close returns as any other (`serve` exits 0)."""
    monkeypatch.setattr(postgres_connection, "CLOSE_SECONDS", 1.0, raising=False)

    async def main() -> None:
        store = PostgresStore(pg_url)
        await store.open()
        querying = asyncio.Event()

        async def stuck() -> None:
            async with store.pool.acquire() as conn:
                querying.set()
                await conn.execute("SELECT pg_sleep(60)")

        stuck_task = asyncio.create_task(stuck())
        await querying.wait()
        await asyncio.sleep(0.2)
        closing = asyncio.create_task(store.close())
        try:
            done, _ = await asyncio.wait({closing}, timeout=5)
            assert done, "the store's close waited for a connection stuck in a query"
            assert closing.exception() is None
            done, _ = await asyncio.wait({stuck_task}, timeout=2)
            assert done, "the query's connection was left open"
        finally:
            closing.cancel()
            stuck_task.cancel()
            await asyncio.gather(closing, stuck_task, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger=postgres_connection.__name__):
        asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if r.name == postgres_connection.__name__]
    assert any("did not close" in line and "pool=turns" in line for line in said), said


def test_a_stop_when_the_database_stopped_answering_closes_the_store_in_time(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database stopped answering (a failover, a NAT that dropped the flows) before a SIGTERM: every open
    connection is silent. Before, closing each one waited for the server's goodbye, which never came, and `serve`
    never exited; now the close gives up after CLOSE_SECONDS, ends the connections and says so."""
    monkeypatch.setattr(postgres_connection, "CLOSE_SECONDS", 1.0, raising=False)

    async def main() -> None:
        where = urlsplit(pg_url)
        relay = Silencer(where.hostname or "127.0.0.1", where.port or 5432)
        async with relay.serving() as port:
            store = PostgresStore(where._replace(netloc=f"{where.username}@127.0.0.1:{port}").geturl())
            await store.open()
            relay.silence()
            closing = asyncio.create_task(store.close())
            try:
                done, _ = await asyncio.wait({closing}, timeout=5)
                assert done, "the store's close waited on a database that no longer answers"
                assert closing.exception() is None
            finally:
                closing.cancel()
                await asyncio.gather(closing, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger=postgres_connection.__name__):
        asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if r.name == postgres_connection.__name__]
    assert any("did not close" in line for line in said), said
