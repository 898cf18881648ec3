"""A burst into one channel, then a restart: threads accepted before it whose notice was still due (notices go out
at most one a second per channel past a short burst) must still be told they are queued by the next start, which
otherwise takes up only the notices already posted (docs/guarantees.md: one notice per waiting thread, across a
restart too)."""

from __future__ import annotations

import asyncio

from bridge.notices import QueueNotices
from bridge.store import open_store
from bridge.store.queue_notices import NoticeRows
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notices
from tests.unit.test_relay import mention, until


def test_threads_whose_notice_was_still_due_at_a_restart_are_told_after_it(database_url: str) -> None:
    async def main() -> list[str]:
        store = open_store(database_url)
        await store.open()
        poster = EditingPoster()
        try:
            first = await store.accept_turn(mention(1, "first"), "o1")
            assert first is not None and await store.take_turn(first) is not None  # holds the channel
            waiting = [mention(n, f"question {n}") for n in range(2, 9)]  # seven threads of their own
            for n, turn in enumerate(waiting, start=2):
                assert await store.accept_turn(turn, f"o{n}") is not None
            before: QueueNotices = notices(store, poster)
            for turn in waiting:
                before.waiting(turn)
            await until(lambda: len(poster.posts) >= 3)  # the burst's first three; the rest are due a second apart
            await before.stop()  # the process restarts with four threads still owed their notice
            assert len(await NoticeRows(store).all()) < len(waiting)
            after = notices(store, poster)
            await after.resume()
            try:
                await asyncio.wait_for(until(lambda: len(poster.posts) >= len(waiting)), 10.0)
            except TimeoutError:
                pass
            await after.stop()
            return [thread for thread, _ in poster.posts]
        finally:
            await store.close()

    told = asyncio.run(main())
    assert sorted(told) == [f"{n}.000001" for n in range(2, 9)], f"threads told they are queued: {told}"
