"""Group commit on SQLite's writer (bridge/store/write_batches.py): writes waiting together share one trip and
one COMMIT, each still gets its own answer, and one that fails or is withdrawn costs the others nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from bridge.domain import Turn
from bridge.store.locks import UrgentFirstLock
from bridge.store.sqlite import SqliteStore
from bridge.store.sqlite_connection import in_thread
from bridge.store.write_batches import WriteBatches


@asynccontextmanager
async def scratch(
    path: Path, most: int = 16
) -> AsyncIterator[tuple[WriteBatches, aiosqlite.Connection, list[str]]]:
    """A writer connection on a file with a table `t` and a child table whose foreign key is checked at COMMIT,
    and the statements run on it from then on (how many COMMITs the writes took)."""
    db = await aiosqlite.connect(path, isolation_level=None)
    await db.execute("PRAGMA foreign_keys=ON")
    await db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    await db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    await db.execute("CREATE TABLE c (id INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
    said: list[str] = []
    await in_thread(db, lambda conn: conn.set_trace_callback(said.append))
    lock = UrgentFirstLock()
    batches = WriteBatches(lambda work: in_thread(db, work), lock.hold, most)
    try:
        yield batches, db, said
    finally:
        try:
            await asyncio.wait_for(batches.drain(), 5)
        finally:
            await db.close()


def insert(key: str) -> Callable[[sqlite3.Connection], int]:
    def work(conn: sqlite3.Connection) -> int:
        return int(conn.execute("INSERT INTO t (k) VALUES (?)", (key,)).lastrowid or 0)

    return work


async def lead_then(batches: WriteBatches, last: Callable[[sqlite3.Connection], None]) -> list[Any]:
    """A write "lead", which goes alone, then "a" and `last`, which wait for it and go together in one batch:
    what "a" and `last` got (results or exceptions). "lead" is checked committed here."""
    results = await asyncio.gather(
        batches.transact(insert("lead")), batches.transact(insert("a")), batches.transact(last), return_exceptions=True
    )
    assert results[0] == 1
    return results[1:]


async def keys(db: aiosqlite.Connection) -> list[str]:
    return [r[0] for r in await db.execute_fetchall("SELECT k FROM t ORDER BY k")]


def test_writes_waiting_together_share_one_commit_and_each_gets_its_own_answer(tmp_path: Path) -> None:
    async def main() -> None:
        async with scratch(tmp_path / "a.db") as (batches, db, said):
            rowids = await asyncio.gather(*(batches.transact(insert(f"k{i:02d}")) for i in range(10)))
            assert sorted(rowids) == list(range(1, 11))
            assert await keys(db) == [f"k{i:02d}" for i in range(10)]
            # The first went alone, at once; the other nine waited for it and went together.
            assert said.count("COMMIT") == 2
            assert await batches.transact(insert("alone")) == 11
            assert said.count("COMMIT") == 3

    asyncio.run(main())


def test_a_write_that_fails_is_undone_alone_and_raises_to_its_own_caller(tmp_path: Path) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k) VALUES ('half')")
        conn.execute("INSERT INTO t (k) VALUES ('a')")  # a duplicate of the write before it: IntegrityError

    async def main() -> None:
        async with scratch(tmp_path / "b.db") as (batches, db, said):
            results = await asyncio.gather(
                batches.transact(insert("a")),
                batches.transact(half_then_fail),
                batches.transact(insert("b")),
                return_exceptions=True,
            )
            assert results[0] == 1 and results[2] == 2
            assert isinstance(results[1], sqlite3.IntegrityError)
            assert await keys(db) == ["a", "b"]  # "half" went with its failed write
            assert said.count("COMMIT") == 2  # "a" alone, then the failing write and "b" together

    asyncio.run(main())


def test_a_failed_commit_fails_every_write_of_its_batch_and_makes_none(tmp_path: Path) -> None:
    def orphan(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO c (id) VALUES (42)")  # no parent: the deferred key fails the COMMIT

    async def main() -> None:
        async with scratch(tmp_path / "c.db") as (batches, db, _said):
            results = await lead_then(batches, orphan)
            assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
            assert await keys(db) == ["lead"]
            assert await batches.transact(insert("after")) == 2  # the connection is usable again

    asyncio.run(main())


def test_urgent_writes_go_first_and_a_batch_holds_at_most_its_limit(tmp_path: Path) -> None:
    order: list[str] = []

    def note(name: str) -> Callable[[sqlite3.Connection], None]:
        def work(conn: sqlite3.Connection) -> None:
            order.append(name)
            conn.execute("INSERT INTO t (k) VALUES (?)", (name,))

        return work

    async def main() -> None:
        async with scratch(tmp_path / "d.db", most=3) as (batches, _db, said):
            writes = [batches.transact(note(f"turn{i}")) for i in range(5)]
            writes.append(batches.transact(note("event"), urgent=True))
            await asyncio.gather(*writes)
            # turn0 went alone; the event, queued last, leads the next batch, which holds three.
            assert order == ["turn0", "event", "turn1", "turn2", "turn3", "turn4"]
            assert said.count("COMMIT") == 3

    asyncio.run(main())


def test_a_write_withdrawn_before_its_batch_began_is_not_made(tmp_path: Path) -> None:
    async def main() -> None:
        async with scratch(tmp_path / "e.db") as (batches, db, _said):
            kept = asyncio.ensure_future(batches.transact(insert("kept")))
            withdrawn = asyncio.ensure_future(batches.transact(insert("withdrawn")))
            await asyncio.sleep(0)  # both are waiting; the batch has not been taken yet
            withdrawn.cancel()
            assert await kept == 1
            with pytest.raises(asyncio.CancelledError):
                await withdrawn
            assert await keys(db) == ["kept"]

    asyncio.run(main())


def test_a_store_burst_of_accepted_turns_takes_far_fewer_commits_than_turns(tmp_path: Path) -> None:
    """Through the store, as the relay accepts a burst of mentions: each turn is recorded (a duplicate is not),
    in a few transactions instead of one each."""
    statements: list[str] = []

    async def main() -> None:
        store = SqliteStore(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        try:
            await in_thread(store.db, lambda conn: conn.set_trace_callback(statements.append))
            turns = [Turn("T1", f"C{i % 4}", f"1.{i:06d}", f"1.{i:06d}", "U1", f"m{i}", f"Ev{i}") for i in range(20)]
            again = Turn("T1", "C0", "1.000000", "1.000000", "U1", "m0", "Ev0")
            ids: list[Any] = await asyncio.gather(
                *(store.accept_turn(t, f"o{i}") for i, t in enumerate([*turns, again]))
            )
            await in_thread(store.db, lambda conn: conn.set_trace_callback(None))
            assert sorted(i for i in ids[:20]) == list(range(1, 21)) and ids[20] is None
            waiting = await store.unfinished_turns("T1", "C1")
            assert [w.turn.text for w in waiting] == [f"m{i}" for i in range(1, 20, 4)]
        finally:
            await store.close()

    asyncio.run(main())
    commits = sum(s == "COMMIT" for s in statements)
    assert 1 <= commits <= 3, commits


def test_a_batch_that_finds_a_multi_statement_transaction_open_goes_after_it(tmp_path: Path) -> None:
    async def main() -> None:
        store = SqliteStore(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        try:
            async with store._write() as db:
                await db.execute("CREATE TABLE t (k TEXT)")
                write = asyncio.ensure_future(store._transact(insert("after")))
                await asyncio.sleep(0.05)
                assert not write.done()  # it found the transaction open between two statements
                await db.execute("INSERT INTO t (k) VALUES ('inside')")
            await write
            rows = await store._all("SELECT k FROM t ORDER BY rowid")
            assert [r["k"] for r in rows] == ["inside", "after"]
        finally:
            await store.close()

    asyncio.run(main())


def test_the_writes_queued_behind_a_withdrawn_lone_write_still_go(tmp_path: Path) -> None:
    def slow(conn: sqlite3.Connection) -> None:
        time.sleep(0.1)
        conn.execute("INSERT INTO t (k) VALUES ('slow')")

    async def main() -> None:
        async with scratch(tmp_path / "f.db") as (batches, db, _said):
            lone = asyncio.ensure_future(batches.transact(slow))
            await asyncio.sleep(0.02)  # on the writer's thread now
            queued = [asyncio.ensure_future(batches.transact(insert(f"q{i}"))) for i in range(3)]
            await asyncio.sleep(0)
            lone.cancel()
            assert await asyncio.wait_for(asyncio.gather(*queued), 5) == [2, 3, 4]
            await asyncio.wait_for(batches.drain(), 5)
            assert await keys(db) == ["q0", "q1", "q2", "slow"]  # made, though its caller stopped waiting

    asyncio.run(main())


def test_a_lone_write_whose_transaction_sqlite_ended_raises_its_own_error(tmp_path: Path) -> None:
    """SQLite rolls a transaction back by itself on some errors (a full disk); the caller hears the write's own
    error, not a failed ROLLBACK's."""

    def ended(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k) VALUES ('gone')")
        conn.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL
        raise sqlite3.OperationalError("database or disk is full")

    async def main() -> None:
        async with scratch(tmp_path / "g.db") as (batches, db, _said):
            with pytest.raises(sqlite3.OperationalError, match="disk is full"):
                await batches.transact(ended)
            assert await keys(db) == []
            assert await batches.transact(insert("next")) == 1

    asyncio.run(main())


def test_a_batch_whose_transaction_sqlite_ended_fails_every_write_with_that_error(tmp_path: Path) -> None:
    def ended(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL: the writes before it in the batch go too
        raise sqlite3.OperationalError("database or disk is full")

    async def main() -> None:
        async with scratch(tmp_path / "h.db") as (batches, db, _said):
            results = await lead_then(batches, ended)
            assert all("disk is full" in str(r) for r in results), results
            assert await keys(db) == ["lead"]

    asyncio.run(main())
