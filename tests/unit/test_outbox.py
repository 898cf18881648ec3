"""bridge/outbox.py and TurnJournal's `written`: a turn that started fresh here answers from what it wrote (no
read of the database), a resumed one reads the database; both write every row first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.domain import AgentReply, Turn
from bridge.outbox import TurnOutbox
from bridge.store import open_store
from bridge.store.sqlite import SqliteStore
from bridge.store.turn_record import TurnJournal


class Counting:
    """The store, with its reads of the outbox and the journal counted."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name in ("outbox_pending", "get_step"):

            async def counted(*args: Any) -> Any:
                self.reads.append(name)
                return await attr(*args)

            return counted
        return attr


def run(tmp_path: Path, body: Any) -> None:
    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        assert isinstance(store, SqliteStore)
        await store.open()
        try:
            turn_id = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", "Ev1"), "o1")
            assert turn_id
            await body(store, Counting(store), turn_id)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_fresh_outbox_keeps_what_it_owes_without_reading_it_back(tmp_path: Path) -> None:
    async def body(store: SqliteStore, counting: Any, turn_id: int) -> None:
        outbox = TurnOutbox(counting, turn_id, fresh=True)
        await outbox.add("reply:a:0", "alice", "one")
        await outbox.add("reply:b:0", "bob", "two")
        [first, second] = await outbox.pending()
        assert (first.source, first.text, second.source) == ("reply:a:0", "one", "reply:b:0")
        await outbox.posted(first, 0, "1.1", last=True)
        await outbox.posted(second, 0, "1.2", last=False)
        [left] = await outbox.pending()
        assert (left.source, left.posted) == ("reply:b:0", frozenset({0}))
        assert counting.reads == []
        # the database holds the same: a resumed turn (or a restart) reads it back
        assert [(i.source, i.posted) for i in await store.outbox_pending(turn_id)] == [("reply:b:0", frozenset({0}))]
        await outbox.add("reply:b:0", "bob", "two again")  # the same source is owed once (read back from now on)
        assert [(i.text, i.posted) for i in await outbox.pending()] == [("two", frozenset({0}))]

    run(tmp_path, body)


def test_a_resumed_outbox_reads_what_an_earlier_run_owed(tmp_path: Path) -> None:
    async def body(store: SqliteStore, counting: Any, turn_id: int) -> None:
        await store.outbox_add(turn_id, "notice:x", None, "owed before the restart")
        outbox = TurnOutbox(counting, turn_id, fresh=False)
        [item] = await outbox.pending()
        assert item.text == "owed before the restart" and counting.reads == ["outbox_pending"]

    run(tmp_path, body)


def test_a_fresh_journal_reads_only_steps_it_wrote(tmp_path: Path) -> None:
    async def body(store: SqliteStore, counting: Any, turn_id: int) -> None:
        journal = TurnJournal(counting, turn_id, "o1", "T1", "C1", written=set())
        assert await journal.step("agent-a") is None and counting.reads == []
        await journal.sending("agent-a")
        record = await journal.step("agent-a")
        assert record is not None and record.state == "sending" and counting.reads == ["get_step"]
        await journal.answered("agent-a", [AgentReply("alice", "hi", agent_id="agent-a", step="agent-a")])
        again = await journal.step("agent-a")
        assert again is not None and again.state == "answered"

    run(tmp_path, body)


def test_a_resumed_journal_reads_every_step(tmp_path: Path) -> None:
    async def body(store: SqliteStore, counting: Any, turn_id: int) -> None:
        await store.step_sending(turn_id, "agent-a")  # an earlier run's send, outcome unknown
        journal = TurnJournal(counting, turn_id, "o1", "T1", "C1")
        record = await journal.step("agent-a")
        assert record is not None and record.state == "sending" and counting.reads == ["get_step"]

    run(tmp_path, body)


def test_a_fresh_outbox_reads_the_database_once_a_write_did_not_return(tmp_path: Path) -> None:
    """Cancelled at the turn's deadline, the write may still have been committed: only the database knows."""

    async def body(store: SqliteStore, counting: Any, turn_id: int) -> None:
        class Cancelled(Counting):
            async def outbox_add(self, *args: Any) -> Any:
                await store.outbox_add(*args)  # committed in the writer's thread ...
                raise asyncio.CancelledError  # ... while the turn's task is cancelled

        outbox = TurnOutbox(Cancelled(store), turn_id, fresh=True)
        try:
            await outbox.add("reply:a:0", "alice", "one")
        except asyncio.CancelledError:
            pass
        assert [i.source for i in await outbox.pending()] == ["reply:a:0"]  # the last flush still posts it

    run(tmp_path, body)


def test_a_fresh_outbox_reads_the_database_when_a_row_was_there_already(tmp_path: Path) -> None:
    """Another process wrote the notice and died before marking the turn running: it is still owed."""

    async def body(store: SqliteStore, counting: Any, turn_id: int) -> None:
        await store.outbox_add(turn_id, "notice:unbound", None, "not connected")
        outbox = TurnOutbox(counting, turn_id, fresh=True)
        await outbox.add("notice:unbound", None, "not connected")
        assert [i.source for i in await outbox.pending()] == ["notice:unbound"]

    run(tmp_path, body)
