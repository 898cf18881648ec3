"""A stop of a thread whose queue notice is due or being posted here (counted, not yet shown): it is said in the
thread once. Where a running turn of the thread was stopped too, its "Stopped by …" says it, and where another
process shows the thread a notice, that notice does; nothing more is posted (docs/sessions.md)."""

from __future__ import annotations

import asyncio

from bridge.domain import Turn
from bridge.stop_request import Stopping
from bridge.store import open_store
from bridge.store.queue_notices import NoticeRow, NoticeRows
from bridge.tasks import Tasks
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notices
from tests.unit.test_relay import mention
from tests.unit.test_stop_queued_without_notice import Ephemerals, SlowCount
from tests.unit.test_stop_word_once import Handler, Running

Outcome = tuple[Ephemerals, list[tuple[str, str]], list[int]]


def stop_while_counting(database_url: str, runs: Turn, waiting: Turn, shown_elsewhere: bool = False) -> Outcome:
    """`runs` is running and `waiting` waits, its thread's notice being counted here (another process showing one
    when `shown_elsewhere`), when U1 says stop in that thread: what the client and the poster were asked to say,
    and the turns stopped."""

    async def main() -> Outcome:
        real = open_store(database_url)
        await real.open()
        store = SlowCount(real)
        poster = EditingPoster()
        try:
            first = await real.accept_turn(runs, "o1")
            assert first is not None and await real.take_turn(first) is not None
            assert await real.accept_turn(waiting, "o2") is not None
            if shown_elsewhere:
                thread = (waiting.team_id, waiting.channel_id, waiting.thread_ts)
                await NoticeRows(real).put(NoticeRow(thread, "9.000001", "channel", 1))
            queue = notices(store, poster)  # type: ignore[arg-type]  # a double
            queue.waiting(waiting)
            await store.counting.wait()  # the thread's notice is being posted: its count asked
            running = Running()
            handler = Handler(Stopping(real, running, waiting_stopped=queue.stopped), Tasks())
            client = Ephemerals()
            stop = mention(3, "stop", thread=int(waiting.thread_ts.partition(".")[0]))
            await handler.on_stop_word(client, stop, quiet=False)  # type: ignore[arg-type]
            await asyncio.sleep(1.5)
            await queue.stop()
            return client, poster.posts, running.stopped
        finally:
            await real.close()

    return asyncio.run(main())


def test_a_stop_that_also_stopped_the_threads_running_turn_posts_no_second_message(database_url: str) -> None:
    """U1's mention runs in thread 1 and a follow-up waits behind it, its notice being counted when a stop word
    comes: the running turn says "Stopped by <@U1>."; the notice, finding nothing waiting, posts nothing."""
    client, posts, stopped = stop_while_counting(database_url, mention(1, "runs"), mention(2, "follow-up", thread=1))
    assert len(stopped) == 2, stopped  # the running turn and the waiting one
    assert client.said == [] and client.told == [], (client.said, client.told)
    assert posts == [], posts


def test_a_stop_where_another_process_shows_the_notice_and_this_one_is_counting_says_it_once(
    database_url: str,
) -> None:
    """The thread's mentions reached two processes: the other shows the thread's notice (its row), this one is
    counting its own when the stop comes here. The other's notice says 'Not answered'; this one, finding nothing
    waiting, posts nothing."""
    runs = mention(1, "holds the channel", user="U0OTHERS1")
    client, posts, _ = stop_while_counting(database_url, runs, mention(2, "waits"), shown_elsewhere=True)
    assert client.said == [] and client.told == [], (client.said, client.told)
    assert posts == [], posts
