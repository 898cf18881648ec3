"""A queue notice outlives its process (bridge/notices.py, store/queue_notices.py): the next start keeps it true,
on both backends. Before, the notices lived in memory only, and one posted before a restart kept promising an
answer for good, even when its mention was deleted."""

from __future__ import annotations

import asyncio

from bridge.domain import Binding
from bridge.notice_words import WITHDRAWN_NOTICE
from bridge.notices import QueueNotices
from bridge.store import open_store
from bridge.store.base import Store
from bridge.store.queue_notices import NoticeRow, NoticeRows
from bridge.store.slack_changes import move_channel, withdraw_turn
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_relay import mention, until
from tests.unit.test_slack_changes import CREW

THREAD = ("T1", "C1", "2.000001")


def notices(store: Store, poster: EditingPoster) -> QueueNotices:
    async def poster_of(team_id: str) -> EditingPoster:
        return poster

    async def in_parallel(team_id: str, channel_id: str) -> bool:
        return False

    return QueueNotices(store, poster_of, in_parallel)  # type: ignore[arg-type]  # a double


async def notice_before_a_restart(store: Store, poster: EditingPoster) -> None:
    """The first mention runs, the second waits and is told so; then the process stops."""
    first = await store.accept_turn(mention(1, "first"), "o1")
    assert first is not None and await store.take_turn(first) is not None
    assert await store.accept_turn(mention(2, "second"), "o2") is not None
    before = notices(store, poster)
    before.waiting(mention(2, "second"))
    while not await NoticeRows(store).all():  # posted, then written
        await asyncio.sleep(0.01)
    await before.stop()


def test_a_notice_from_before_a_restart_says_its_deleted_mention_will_not_be_answered(database_url: str) -> None:
    async def main() -> tuple[list[tuple[str, str]], list[NoticeRow]]:
        store = open_store(database_url)
        await store.open()
        poster = EditingPoster()
        try:
            await notice_before_a_restart(store, poster)
            assert [row.thread for row in await NoticeRows(store).all()] == [THREAD]
            after = notices(store, poster)
            await after.resume()
            withdrawn = await withdraw_turn(store, "T1", "C1", "2.000001", "deleted")
            assert withdrawn is not None
            after.withdrawn(("T1", "C1", withdrawn[1]))
            await until(lambda: bool(poster.edits))
            await asyncio.sleep(0.1)
            await after.stop()
            return poster.edits, await NoticeRows(store).all()
        finally:
            await store.close()

    edits, rows = asyncio.run(main())
    assert edits == [("9.000001", WITHDRAWN_NOTICE)]
    assert rows == []  # said its last word: nothing left for the next start


def test_a_notice_from_before_a_restart_is_left_as_it_is_when_its_turn_goes_to_the_agents(
    database_url: str,
) -> None:
    async def main() -> tuple[list[tuple[str, str]], list[NoticeRow]]:
        store = open_store(database_url)
        await store.open()
        poster = EditingPoster()
        try:
            await notice_before_a_restart(store, poster)
            after = notices(store, poster)
            await after.resume()
            await store.finish_turn(1, "done")
            assert await store.take_turn(2) is not None
            after.started(THREAD)
            await asyncio.sleep(1.0)  # looked at in the first round
            await after.stop()
            return poster.edits, await NoticeRows(store).all()
        finally:
            await store.close()

    edits, rows = asyncio.run(main())
    assert edits == []
    assert rows == []


def test_notice_rows_are_kept_per_thread_moved_with_their_channel_and_pruned(database_url: str) -> None:
    async def main() -> None:
        store = open_store(database_url)
        await store.open()
        rows = NoticeRows(store)
        try:
            await rows.put(NoticeRow(THREAD, "9.1", "channel", 3))
            await rows.put(NoticeRow(THREAD, "9.2", "thread", 4))  # a later notice of the thread replaces it
            await rows.shown(NoticeRow(THREAD, "9.1", "thread", 1))  # the earlier one's edit: nothing to change
            assert await rows.all() == [NoticeRow(THREAD, "9.2", "thread", 4)]
            await rows.shown(NoticeRow(THREAD, "9.2", "thread", 2))
            await rows.drop(THREAD, "9.1")
            assert await rows.all() == [NoticeRow(THREAD, "9.2", "thread", 2)]
            await store.put_binding(Binding("T1", "C1", CREW))
            assert await move_channel(store, "T1", "C1", "C2")
            assert [row.thread for row in await rows.all()] == [("T1", "C2", "2.000001")]
            assert await rows.prune(1.0) == 0
            assert await rows.prune(-1.0) == 1  # posted more than the retention ago
            assert await rows.all() == []
        finally:
            await store.close()

    asyncio.run(main())
