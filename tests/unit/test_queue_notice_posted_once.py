"""A queue notice is never posted twice in a thread because a process started (bridge/notices.py resume): a notice
still due in another process's memory, or posted by a process stopped before it wrote its row, is not owed again
by the next start ("nothing posted twice" outranks "told it is queued"; docs/guarantees.md). On both backends."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

from bridge.store import open_store
from bridge.store.queue_notices import NoticeRows
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notices
from tests.unit.test_relay import mention, until


class LandsThenAnswers(EditingPoster):
    """Slack takes the post at once; its answer comes 0.3 s later (as a real round trip)."""

    async def post(self, channel: str, thread_ts: str, part: SimpleNamespace, **_: object) -> str:
        self.posts.append((thread_ts, part.text))
        ts = f"9.{len(self.posts):06d}"
        await asyncio.sleep(0.3)
        return ts


def test_a_graceful_stop_while_a_notice_is_posted_does_not_post_a_second_after_restart(database_url: str) -> None:
    """A stop (a deploy) cancels the notices' task after Slack took the post and before its row was written: the
    next start does not post the thread a second notice."""

    async def main() -> Counter[str]:
        store = open_store(database_url)
        await store.open()
        poster = LandsThenAnswers()
        try:
            first = await store.accept_turn(mention(1, "first"), "o1")
            assert first is not None and await store.take_turn(first) is not None
            second = mention(2, "second")
            assert await store.accept_turn(second, "o2") is not None
            before = notices(store, poster)
            before.waiting(second)
            await until(lambda: bool(poster.posts))  # Slack has it; the answer is on its way
            await before.stop()
            assert await NoticeRows(store).all() == []
            after = notices(store, poster)
            await after.resume()
            await asyncio.sleep(1.0)
            await after.stop()
            return Counter(thread for thread, _ in poster.posts)
        finally:
            await store.close()

    posts = asyncio.run(main())
    assert posts["2.000001"] == 1, f"notices posted per thread: {posts}"


def test_a_second_process_starting_does_not_post_notices_the_first_still_owes(database_url: str) -> None:
    """Two processes on one database: A accepted a burst, its notices going out one a second; B starts (a rolling
    deploy, a scale-up) while A goes on: no thread gets a notice from both."""

    async def main() -> Counter[str]:
        store = open_store(database_url)
        await store.open()
        poster = EditingPoster()
        try:
            first = await store.accept_turn(mention(1, "first"), "o1")
            assert first is not None and await store.take_turn(first) is not None
            waiting = [mention(n, f"question {n}") for n in range(2, 9)]
            for n, turn in enumerate(waiting, start=2):
                assert await store.accept_turn(turn, f"o{n}") is not None
            a = notices(store, poster)
            for turn in waiting:
                a.waiting(turn)
            await until(lambda: len(poster.posts) >= 3)
            b = notices(store, poster)  # a second process starts; A goes on
            await b.resume()
            await asyncio.sleep(6.0)
            await a.stop()
            await b.stop()
            return Counter(thread for thread, _ in poster.posts)
        finally:
            await store.close()

    posts = asyncio.run(main())
    assert max(posts.values()) == 1, f"notices posted per thread: {posts}"
