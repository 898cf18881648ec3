"""A stop word in a thread whose mention waits behind others, before that thread's queue notice was posted (one
new notice a second per channel): the waiting turn is stopped, and with no notice to say so and no running turn to
say "Stopped by …", the person who stopped it is told (docs/guarantees.md: never silent)."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.domain import Turn
from bridge.notice_words import STOPPED_NOTICE
from bridge.stopping import Stopping
from bridge.store import open_store
from bridge.tasks import Tasks
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notices
from tests.unit.test_stop_word_once import ASKER, CHANNEL, TEAM, Handler, Running


class Ephemerals:
    """A client that records what the person was told."""

    def __init__(self) -> None:
        self.told: list[dict[str, Any]] = []

    async def chat_postEphemeral(self, **args: Any) -> None:  # Slack's method name
        self.told.append(args)


def test_stopping_a_queued_mention_without_a_notice_tells_the_person_it_will_not_be_answered(
    database_url: str,
) -> None:
    async def main() -> tuple[list[dict[str, Any]], str]:
        store = open_store(database_url)
        await store.open()
        try:
            running = Turn(TEAM, CHANNEL, "1.000001", "1.000001", "U0OTHERS1", "holds the channel")
            first = await store.accept_turn(running, "o1")
            assert first is not None and await store.take_turn(first) is not None
            waiting = Turn(TEAM, CHANNEL, "2.000001", "2.000001", ASKER, "waits, untold")
            assert await store.accept_turn(waiting, "o2") is not None
            queue = notices(store, EditingPoster())  # the thread's notice is not posted yet
            handler = Handler(Stopping(store, Running(), waiting_stopped=queue.stopped), Tasks())
            client = Ephemerals()
            stop = Turn(TEAM, CHANNEL, "2.000002", "2.000001", ASKER, "stop")
            await handler.on_stop_word(client, stop, quiet=False)  # type: ignore[arg-type]  # a double
            await queue.stop()
            return client.told, waiting.thread_ts
        finally:
            await store.close()

    told, thread_ts = asyncio.run(main())
    assert [(t["user"], t["thread_ts"], t["text"]) for t in told] == [(ASKER, thread_ts, STOPPED_NOTICE)], told
