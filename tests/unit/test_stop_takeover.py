"""A stop whose turn no live process runs (its process was killed, or crashed) is finished by the process that
takes the binding over: the stop leaves a running turn `stopping`, which still counts as unfinished, so the sweep
finds it and the binding's worker is handed it, marked as stopped (never to be run). Each case runs on a real
SQLite file and on the throwaway Postgres (tests/pg.py), including a database made by the previous schema."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

import bridge.store.postgres_connection as postgres_connection
import bridge.store.sqlite_connection as sqlite_connection
from bridge.domain import Turn
from bridge.relay import Relay
from bridge.store import Store
from bridge.store.leases import BindingLeases
from bridge.store.postgres import PostgresStore
from bridge.store.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from bridge.store.sqlite import SqliteStore
from bridge.turns import Job
from tests.unit.test_store import run

PREVIOUS = 10  # the schema version before `stopping` counted as unfinished


def mention(n: int, thread: int | None = None) -> Turn:
    ts = f"{n}.000001"
    return Turn("T1", "C1", ts, f"{thread}.000001" if thread else ts, "U1", f"question {n}", f"Ev{n}")


async def accept(store: Store, n: int, thread: int | None = None) -> int:
    turn_id = await store.accept_turn(mention(n, thread), f"otid-{n}")
    assert turn_id is not None
    return turn_id


def test_a_running_turn_stopped_stays_unfinished_until_its_stop_is_finished(database_url: str) -> None:
    """Before, the running turn was marked `stopped`, a finished state: no sweep, no worker ever saw it again."""

    async def body(store: Store) -> None:
        running, queued = await accept(store, 1), await accept(store, 2, thread=1)
        assert await store.take_turn(running)
        assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(running, False), (queued, True)]
        # The queued turn never started: stopped outright. The running one waits for the binding's holder.
        pending = await store.next_turn("T1", "C1")
        assert pending is not None and pending.turn_id == running
        assert pending.stopped_by == "U9" and pending.started
        assert await store.orphaned_bindings() == [("T1", "C1")]
        assert await store.waiting_threads("T1", "C1") == ["1.000001"]
        assert await store.turn_stopped_by(running) == "U9" and await store.turn_stopped_by(queued) == "U9"
        assert await store.take_turn(running) is None  # never run again
        assert await store.stop_turns("T1", "C1", "1.000001", "U8") == []  # a second stop changes nothing
        # Its end (by the live process that ran it, whatever it had come to, or by the one taking it over)
        # leaves it stopped, by the first stopper.
        await store.finish_turn(running, "done")
        assert await store.next_turn("T1", "C1") is None and await store.count_unfinished() == 0
        assert await store.turn_stopped_by(running) == "U9"
        assert await store.orphaned_bindings() == []

    run(database_url, body)


async def running_in_the_old_schema(store: Store, turn_id: int) -> None:
    update = "UPDATE turns SET status='running' WHERE id=%s"
    if isinstance(store, SqliteStore):
        await store.db.execute(update % "?", (turn_id,))
        await store.db.commit()
    else:
        assert isinstance(store, PostgresStore)
        await store.pool.execute(update % "$1", turn_id)


def test_a_database_made_by_the_previous_schema_is_migrated_and_finds_its_stopping_turns(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bridge upgraded over a database with a turn running: the partial indexes are rebuilt to hold `stopping`
    turns (SQLite's INDEXED BY queries would find no plan with the old ones) and the turn is found."""
    with monkeypatch.context() as previous:
        previous.setattr(sqlite_connection, "MIGRATIONS", SQLITE_MIGRATIONS[:PREVIOUS])
        previous.setattr(
            postgres_connection, "MIGRATIONS", {v: s for v, s in POSTGRES_MIGRATIONS.items() if v <= PREVIOUS}
        )

        async def old(store: Store) -> None:
            assert await store.schema_version() == PREVIOUS
            await running_in_the_old_schema(store, await accept(store, 1))  # take_turn writes what it lacks
            await accept(store, 2)

        run(database_url, old)

    async def upgraded(store: Store) -> None:
        assert await store.schema_version() == len(SQLITE_MIGRATIONS) > PREVIOUS
        running = (await store.next_turn("T1", "C1")).turn_id  # type: ignore[union-attr]
        assert await store.stop_turns("T1", "C1", None, "U9") == [(running, False), (running + 1, True)]
        pending = await store.next_turn("T1", "C1", "1.000001")
        assert pending is not None and (pending.turn_id, pending.stopped_by) == (running, "U9")
        assert await store.count_unfinished("T1", "C1") == 1
        assert await store.turns_ahead("T1", "C1", "1.000001", in_thread=False) == 0
        if isinstance(store, SqliteStore):
            async with store.db.execute("SELECT sql FROM sqlite_master WHERE name LIKE 'turns_unfinished%'") as c:
                definitions = [str(r[0]) for r in await c.fetchall()]
        else:
            assert isinstance(store, PostgresStore)
            rows = await store.pool.fetch("SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'turns_unfinished%'")
            definitions = [str(r[0]) for r in rows]
        assert len(definitions) == 2 and all("stopping" in d for d in definitions), definitions

    run(database_url, upgraded)


class Recording:
    """The binding's worker in the process taking over: records each job, ends it as the real one would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs: list[Job] = []

        async def in_parallel(team_id: str, channel_id: str) -> bool:
            return False

        self.threads = SimpleNamespace(in_parallel=in_parallel)

    def expect(self, job: Job) -> None:
        """Nothing to look up ahead."""

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        await self.store.finish_turn(job.turn_id, "stopped" if job.stopped_by else "done")
        return "stopped" if job.stopped_by else "done"


def test_a_turn_stopped_after_its_process_died_is_handed_to_the_process_taking_the_binding_over(
    database_url: str,
) -> None:
    """Process `web.dead` ran the turn and died (its lease runs out); the stop is recorded meanwhile. Before, the
    survivor's sweep never looked at the turn again, so nothing took its working signs back."""

    async def body(store: Store) -> None:
        turn_id = await accept(store, 1)
        await store.claim_binding("T1", "C1", "web.dead", 1.0)
        assert await store.take_turn(turn_id)
        after = await accept(store, 2, thread=1)  # queued behind it in the thread: stopped outright
        assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False), (after, True)]
        worker = Recording(store)
        relay = Relay(store, worker, None, 4, leases=BindingLeases(store, 3.0, "web.alive"))  # type: ignore[arg-type]
        try:
            await relay.resume()  # the sweep takes the binding over once the dead process's lease has run out
            async with asyncio.timeout(5):
                while not worker.jobs:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
        finally:
            await relay.stop(1.0)
        [job] = worker.jobs
        assert (job.turn_id, job.stopped_by, job.resumed) == (turn_id, "U9", True)
        assert await store.count_unfinished() == 0

    run(database_url, body)
