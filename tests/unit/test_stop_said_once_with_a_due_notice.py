"""A stop of a thread whose queue notice is due or being posted here (counted, not yet shown): it is said in the
thread once. Where a running turn of the thread was stopped too, its "Stopped by …" says it; nothing more is posted
(docs/sessions.md)."""

from __future__ import annotations

import asyncio

from bridge.stop_request import Stopping
from bridge.store import open_store
from bridge.tasks import Tasks
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notices
from tests.unit.test_relay import mention
from tests.unit.test_stop_queued_without_notice import Ephemerals, SlowCount
from tests.unit.test_stop_word_once import Handler, Running


def test_a_stop_that_also_stopped_the_threads_running_turn_posts_no_second_message(database_url: str) -> None:
    """U1's mention runs in thread 1 and a follow-up waits behind it, its notice being counted when a stop word
    comes: the running turn says "Stopped by <@U1>."; the notice, finding nothing waiting, posts nothing."""

    async def main() -> tuple[Ephemerals, list[tuple[str, str]], list[int]]:
        real = open_store(database_url)
        await real.open()
        store = SlowCount(real)
        poster = EditingPoster()
        try:
            first = await real.accept_turn(mention(1, "runs"), "o1")
            assert first is not None and await real.take_turn(first) is not None
            waiting = mention(2, "follow-up", thread=1)
            assert await real.accept_turn(waiting, "o2") is not None
            queue = notices(store, poster)  # type: ignore[arg-type]  # a double
            queue.waiting(waiting)
            await store.counting.wait()  # the thread's notice is being posted: its count asked
            running = Running()
            handler = Handler(Stopping(real, running, waiting_stopped=queue.stopped), Tasks())
            client = Ephemerals()
            await handler.on_stop_word(client, mention(3, "stop", thread=1), quiet=False)  # type: ignore[arg-type]
            await asyncio.sleep(1.5)
            await queue.stop()
            return client, poster.posts, running.stopped
        finally:
            await real.close()

    client, posts, stopped = asyncio.run(main())
    assert len(stopped) == 2, stopped  # the running turn and the waiting one
    assert client.said == [] and client.told == [], (client.said, client.told)
    assert posts == [], posts
