"""A thread's queue notice when its channel's id changes (bridge/notices.py, `QueueNotices.moved`): the notice goes
on under the new id, and a turn taken under the old id that ends after the move ends under the new one. Before,
the notices stayed keyed by the old id (a second notice in the thread, a deleted mention's notice still promising);
re-keying alone made such a turn's end raise KeyError."""

from __future__ import annotations

import asyncio

import pytest

from bridge.domain import Binding
from bridge.notice_words import WITHDRAWN_NOTICE
from bridge.store import open_store
from bridge.store.queue_notices import NoticeRows
from bridge.store.slack_changes import move_channel, withdraw_turn
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notice_before_a_restart, notices
from tests.unit.test_relay import until
from tests.unit.test_slack_changes import CREW

OLD, NEW = ("T1", "C1", "2.000001"), ("T1", "C2", "2.000001")


@pytest.mark.parametrize("goes", [True, False], ids=["goes-to-agents", "ends-unrun"])
def test_a_turn_taken_under_the_old_id_ends_under_the_new_one(database_url: str, goes: bool) -> None:
    async def main() -> None:
        store = open_store(database_url)
        await store.open()
        poster = EditingPoster()
        try:
            await notice_before_a_restart(store, poster)
            await store.put_binding(Binding("T1", "C1", CREW))
            queue = notices(store, poster)
            await queue.resume()
            with queue.taking(OLD) as going:  # the thread's turn is taken before Slack changes the id
                assert await move_channel(store, "T1", "C1", "C2")
                queue.moved("T1", "C1", "C2")
                assert queue._taking == {NEW: 1}  # its notice waits to be told how the turn ends
                if goes:
                    going()
            assert queue._taking == {}  # no KeyError, and nothing left counted
            assert list(queue._shown) == [NEW]
            assert queue._shown[NEW].thread == NEW
            assert queue._shown[NEW].answered is goes  # what it promised is kept: left as it is
            await queue.stop()
        finally:
            await store.close()

    asyncio.run(main())


def test_a_mention_withdrawn_under_the_old_id_after_the_move_ends_the_notice(database_url: str) -> None:
    """A deletion read under the old id after the move (an event sent before it) still reaches the notice."""

    async def main() -> list[tuple[str, str]]:
        store = open_store(database_url)
        await store.open()
        poster = EditingPoster()
        try:
            await notice_before_a_restart(store, poster)
            await store.put_binding(Binding("T1", "C1", CREW))
            queue = notices(store, poster)
            await queue.resume()
            assert await move_channel(store, "T1", "C1", "C2")
            queue.moved("T1", "C1", "C2")
            await store.finish_turn(1, "done")
            assert await withdraw_turn(store, "T1", "C2", "2.000001", "deleted") is not None
            queue.withdrawn(OLD)
            await until(lambda: bool(poster.edits))
            assert await NoticeRows(store).all() == []
            await queue.stop()
            return poster.edits
        finally:
            await store.close()

    assert asyncio.run(main()) == [("9.000001", WITHDRAWN_NOTICE)]

