"""A stop word in a thread whose mention waits behind others, before that thread's queue notice was posted (one
new notice a second per channel): the waiting turn is stopped, and with no notice to say so and no running turn to
say "Stopped by …", the thread is told, where every asker sees it (docs/guarantees.md: never silent); but never a
second time where a notice, of any process, says it."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.domain import Turn
from bridge.notice_words import STOPPED_NOTICE
from bridge.stop_request import Stopping
from bridge.store import open_store
from bridge.store.base import Store
from bridge.store.queue_notices import NoticeRow, NoticeRows
from bridge.tasks import Tasks
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notices
from tests.unit.test_relay import mention
from tests.unit.test_stop_word_once import ASKER, CHANNEL, STRANGER, TEAM, Handler, Running


class Ephemerals:
    """A client that records what the person was told, and what was said in the thread."""

    def __init__(self) -> None:
        self.told: list[dict[str, Any]] = []
        self.said: list[dict[str, Any]] = []

    async def chat_postEphemeral(self, **args: Any) -> None:  # Slack's method name
        self.told.append(args)

    async def chat_postMessage(self, **args: Any) -> dict[str, Any]:  # Slack's method name
        self.said.append(args)
        return {"ok": True, "ts": f"8.{len(self.said):06d}"}


def stop_queued(database_url: str, stopper: str, by: str = "asker", shown_elsewhere: bool = False) -> Ephemerals:
    """The first mention runs, ASKER's second waits without a notice here (one shown by another process when
    `shown_elsewhere`); `stopper` says stop in its thread. What the client was asked to say."""

    async def main() -> Ephemerals:
        store = open_store(database_url)
        await store.open()
        try:
            if shown_elsewhere:
                await NoticeRows(store).put(NoticeRow((TEAM, CHANNEL, "2.000001"), "9.000001", "channel", 1))
            running = Turn(TEAM, CHANNEL, "1.000001", "1.000001", "U0OTHERS1", "holds the channel")
            first = await store.accept_turn(running, "o1")
            assert first is not None and await store.take_turn(first) is not None
            waiting = Turn(TEAM, CHANNEL, "2.000001", "2.000001", ASKER, "waits, untold")
            assert await store.accept_turn(waiting, "o2") is not None
            queue = notices(store, EditingPoster())  # the thread's notice is not posted yet
            stopping = Stopping(store, Running(), by, waiting_stopped=queue.stopped)  # type: ignore[arg-type]
            client = Ephemerals()
            stop = Turn(TEAM, CHANNEL, "2.000002", "2.000001", stopper, "stop")
            await Handler(stopping, Tasks()).on_stop_word(client, stop, quiet=False)  # type: ignore[arg-type]
            await queue.stop()
            return client
        finally:
            await store.close()

    return asyncio.run(main())


def test_stopping_a_queued_mention_without_a_notice_says_in_its_thread_it_will_not_be_answered(
    database_url: str,
) -> None:
    client = stop_queued(database_url, ASKER)
    assert [(t["thread_ts"], t["text"]) for t in client.said] == [("2.000001", STOPPED_NOTICE)], client.said
    assert client.told == []


def test_a_stop_of_someone_elses_queued_mention_is_said_where_its_asker_sees_it(database_url: str) -> None:
    """SLACK_STOP_BY=anyone (or a configurer): the mention stopped is another person's, who sees no ephemeral."""
    client = stop_queued(database_url, STRANGER, by="anyone")
    assert [(t["thread_ts"], t["text"]) for t in client.said] == [("2.000001", STOPPED_NOTICE)], client.said
    assert client.told == []


def test_a_stop_in_a_thread_whose_notice_another_process_shows_is_not_said_again(database_url: str) -> None:
    """Another process posted the thread's notice (its row is in the store): that notice says the stop."""
    client = stop_queued(database_url, ASKER, shown_elsewhere=True)
    assert client.said == [] and client.told == [], (client.said, client.told)


class SlowCount:
    """The store, its count of turns ahead taking 0.2 s (a loaded database)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.counting = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def turns_ahead(self, *args: Any, **kwargs: Any) -> int:
        self.counting.set()
        await asyncio.sleep(0.2)
        return await self._store.turns_ahead(*args, **kwargs)


def test_a_stop_while_its_threads_notice_is_being_counted_is_said_in_the_thread(database_url: str) -> None:
    """The thread's notice is being posted (its count asked) when the stop comes: the count, made after the stop,
    finds nothing ahead and no notice is posted; the stop's words are, in the thread."""

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[tuple[str, str]]]:
        real = open_store(database_url)
        await real.open()
        store = SlowCount(real)
        poster = EditingPoster()
        try:
            running = mention(1, "holds the channel", user="U0OTHERS1")
            first = await real.accept_turn(running, "o1")
            assert first is not None and await real.take_turn(first) is not None
            waiting = mention(2, "waits")
            assert await real.accept_turn(waiting, "o2") is not None
            queue = notices(store, poster)  # type: ignore[arg-type]  # a double
            queue.waiting(waiting)
            await store.counting.wait()  # the thread's notice is being posted: its count asked
            handler = Handler(Stopping(real, Running(), waiting_stopped=queue.stopped), Tasks())
            client = Ephemerals()
            await handler.on_stop_word(client, mention(3, "stop", thread=2), quiet=False)  # type: ignore[arg-type]
            await asyncio.sleep(1.5)
            await queue.stop()
            return client.told, client.said, poster.posts
        finally:
            await real.close()

    told, said, posts = asyncio.run(main())
    assert told == [] and said == [], (told, said)
    assert posts == [("2.000001", STOPPED_NOTICE)], posts


class QueuedPostFails(EditingPoster):
    """Slack refuses the queue notice (after 0.2 s); other words are posted."""

    def __init__(self) -> None:
        super().__init__()
        self.posting = asyncio.Event()

    async def post(self, channel: str, thread_ts: str, part: Any, **kwargs: Any) -> str:
        if part.text.startswith("Queued"):
            self.posting.set()
            await asyncio.sleep(0.2)
            raise RuntimeError("ratelimited")
        return await super().post(channel, thread_ts, part, **kwargs)


def test_a_stop_while_its_threads_notice_fails_to_post_is_said_in_the_thread(database_url: str) -> None:
    """The stop counted on the notice being posted to say it; Slack refused that notice: the stop's words are
    posted in the thread instead."""

    async def main() -> list[tuple[str, str]]:
        store = open_store(database_url)
        await store.open()
        poster = QueuedPostFails()
        try:
            first = await store.accept_turn(mention(1, "holds the channel", user="U0OTHERS1"), "o1")
            assert first is not None and await store.take_turn(first) is not None
            waiting = mention(2, "waits")
            assert await store.accept_turn(waiting, "o2") is not None
            queue = notices(store, poster)
            queue.waiting(waiting)
            await poster.posting.wait()
            handler = Handler(Stopping(store, Running(), waiting_stopped=queue.stopped), Tasks())
            await handler.on_stop_word(Ephemerals(), mention(3, "stop", thread=2), quiet=False)  # type: ignore[arg-type]
            await asyncio.sleep(1.5)
            await queue.stop()
            return poster.posts
        finally:
            await store.close()

    assert asyncio.run(main()) == [("2.000001", STOPPED_NOTICE)]
