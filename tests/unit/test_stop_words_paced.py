"""A stop of a channel whose waiting threads' queue notices are due (new notices go out about one a second per
channel): each thread is told "Not answered: stopped before its turn came." as its notice would have been, within
the channel's pacing, not all in one burst."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from bridge.notice_pacing import POST_BURST, POST_SPACING
from bridge.notice_words import STOPPED_NOTICE
from bridge.stop_request import Stopping
from bridge.store import open_store
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notices
from tests.unit.test_relay import mention
from tests.unit.test_stop_queued_without_notice import SlowCount
from tests.unit.test_stop_word_once import Running

WAITING = 5  # threads whose notice is due when the stop comes


class TimedPoster(EditingPoster):
    """Posts at once, noting when."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    async def post(self, channel: str, thread_ts: str, part: SimpleNamespace, **_: object) -> str:
        self.at.append(asyncio.get_running_loop().time())
        self.posts.append((thread_ts, part.text))
        return f"9.{len(self.posts):06d}"


def test_a_channel_stop_tells_its_due_threads_at_the_pace_of_notices(database_url: str) -> None:
    async def main() -> TimedPoster:
        real = open_store(database_url)
        await real.open()
        store = SlowCount(real)
        poster = TimedPoster()
        try:
            first = await real.accept_turn(mention(1, "holds the channel", user="U0OTHERS1"), "o1")
            assert first is not None and await real.take_turn(first) is not None
            queue = notices(store, poster)  # type: ignore[arg-type]  # a double
            for n in range(2, 2 + WAITING):
                waiting = mention(n, "waits")
                assert await real.accept_turn(waiting, f"o{n}") is not None
                queue.waiting(waiting)
            await store.counting.wait()  # the first thread's notice is being posted: its count asked
            stopping = Stopping(real, Running(), "anyone", waiting_stopped=queue.stopped)

            async def may_configure() -> bool:
                return True

            outcome = await stopping.request("T1", "C1", None, "U1", may_configure)
            assert outcome.stopped == 1 + WAITING and outcome.untold == (), outcome
            await asyncio.sleep((WAITING - POST_BURST + 1) * POST_SPACING + 0.5)
            await queue.stop()
            return poster
        finally:
            await real.close()

    poster = asyncio.run(main())
    assert sorted(poster.posts) == [(f"{n}.000001", STOPPED_NOTICE) for n in range(2, 2 + WAITING)], poster.posts
    took = poster.at[-1] - poster.at[0]
    assert took >= (WAITING - POST_BURST) * POST_SPACING - 0.5, f"{WAITING} posts in {took:.2f} s"
