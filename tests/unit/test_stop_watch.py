"""The serving SQLite store answers `turn_stopped_by` for a turn it took from memory, and reads the file for any
turn a stop was written for since: a stop is never missed, and a running turn's checks cost no trip."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.domain import Turn
from bridge.store.slack_changes import withdraw_turn
from bridge.store.sqlite import SqliteStore


class Counted(SqliteStore):
    """Counts the trips to the reader's thread."""

    reads = 0

    async def _all(self, sql: str, params: tuple[object, ...] = ()) -> list:  # type: ignore[override,type-arg]
        self.reads += 1
        return await super()._all(sql, params)  # type: ignore[arg-type]


async def accepted(store: SqliteStore, ts: str) -> int:
    turn_id = await store.accept_turn(Turn("T1", "C1", ts, ts, "U1", "hello", f"Ev{ts}"), ts)
    assert turn_id is not None
    return turn_id


def test_a_running_turn_is_checked_without_a_read_until_a_stop_is_written(tmp_path: Path) -> None:
    async def main() -> None:
        store = Counted(f"sqlite:///{tmp_path / 'bridge.db'}", exclusive=True)
        await store.open()
        try:
            first, second = await accepted(store, "1.000001"), await accepted(store, "1.000002")
            assert await store.take_turn(first) is not None
            before = store.reads
            for _ in range(3):  # before each post and each next agent
                assert await store.turn_stopped_by(first) is None
            assert store.reads == before, "a turn taken here and not stopped since is known not stopped"

            await store.stop_turns("T1", "C1", None, "U9")  # the running one stopping, the queued one stopped
            assert await store.turn_stopped_by(first) == "U9"
            assert await store.turn_stopped_by(second) == "U9"
            await store.finish_turn(first, "stopped", "stopped by U9")
            assert await store.turn_stopped_by(first) == "U9", "an ended turn is read from the file"

            third = await accepted(store, "1.000003")
            assert await store.take_turn(third) is not None
            await store.finish_turn(third, "stopped", "stopped by U7")  # its own end, as stop_end writes it
            assert await store.turn_stopped_by(third) == "U7"
        finally:
            await store.close()

    asyncio.run(main())


def test_a_stop_written_while_the_turn_runs_is_seen_whichever_write_made_it(tmp_path: Path) -> None:
    async def main() -> None:
        store = Counted(f"sqlite:///{tmp_path / 'bridge.db'}", exclusive=True)
        await store.open()
        try:
            turn_id = await accepted(store, "1.000001")
            assert await store.take_turn(turn_id) is not None
            assert await store.turn_stopped_by(turn_id) is None
            async with store._write() as db:  # a multi-statement write, as the stop takeover's
                await db.execute("UPDATE turns SET status='stopping', error='stopped by U5' WHERE id=?", (turn_id,))
            assert await store.turn_stopped_by(turn_id) == "U5"

            queued = await accepted(store, "1.000002")
            assert await withdraw_turn(store, "T1", "C1", "1.000002", "deleted") is not None
            assert await store.take_turn(queued) is None, "a withdrawn turn is not taken"
        finally:
            await store.close()

    asyncio.run(main())


def test_a_command_s_store_reads_every_time(tmp_path: Path) -> None:
    """A store opened by a command (not the serving process holding the file) does not watch the stops: the
    serving process may write them."""

    async def main() -> None:
        url = f"sqlite:///{tmp_path / 'bridge.db'}"
        store = Counted(url)
        await store.open()
        try:
            turn_id = await accepted(store, "1.000001")
            assert await store.take_turn(turn_id) is not None
            before = store.reads
            assert await store.turn_stopped_by(turn_id) is None
            assert store.reads == before + 1
        finally:
            await store.close()

    asyncio.run(main())
