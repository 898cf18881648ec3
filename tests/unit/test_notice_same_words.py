"""A queue notice whose post Slack answered with a 500 (bridge/notices.py), in a thread that had a notice in the
same words before. The store is a real SQLite file, Slack the fake, the poster the bridge's own."""

from __future__ import annotations

import asyncio
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import Turn
from bridge.notices import QueueNotices
from bridge.slack.post import SlackPoster
from bridge.store import Store, open_store
from tests.fakes.slack import FakeSlack

WORDS = "Queued: I'll answer after the 1 earlier message in this channel."


async def mention(store: Store, slack: FakeSlack, thread: str | None, status: str = "received") -> tuple[Turn, int]:
    """A mention in C1 (a new thread when `thread` is None) accepted as a turn, left `status`."""
    ts = slack.add_message("C1", "<@UBOT> and then?", thread_ts=thread)
    turn = Turn("T1", "C1", ts, thread or ts, "U1", "and then?", f"Ev-{ts}")
    turn_id = await store.accept_turn(turn, f"otid-{ts}")
    assert turn_id is not None
    if status != "received":
        assert await store.take_turn(turn_id)
        if status != "running":
            await store.finish_turn(turn_id, status)
    return turn, turn_id


def test_a_queue_notice_whose_post_failed_unseen_is_not_taken_for_an_earlier_one_in_the_same_words(
    tmp_path: Path,
) -> None:
    """A thread waited behind another turn and was told so; later (after a restart) its next mention waits behind
    one turn again. That notice's post answered 500 and did not land: the poster read the whole thread for it,
    found the earlier notice in the same words and took it for the new one. The thread was not told it waits,
    and the old notice, up the thread, was the one edited from then on."""

    async def main() -> None:
        with FakeSlack() as slack:
            slack.add_channel("C1", "general")
            store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
            await store.open()
            poster = SlackPoster(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))

            async def poster_of(_team: str) -> SlackPoster:
                return poster

            async def in_parallel(_team: str, _channel: str) -> bool:
                return False

            def told(root: str) -> list[str]:
                return [m["ts"] for m in slack.messages("C1", root) if m.get("text") == WORDS and m.get("bot_id")]

            try:
                _, ahead = await mention(store, slack, None, "running")  # another thread's turn holds the channel
                first, first_id = await mention(store, slack, None)
                notices = QueueNotices(store, poster_of, in_parallel)
                notices.waiting(first)
                await asyncio.to_thread(slack.wait_for, lambda: len(told(first.thread_ts)) == 1, 5)
                await notices.stop()  # a restart: its notices are forgotten
                await store.finish_turn(ahead, "done")
                await store.finish_turn(first_id, "done")
                await mention(store, slack, None, "running")  # another turn holds the channel again
                second, _ = await mention(store, slack, first.thread_ts)
                slack.fail_next("chat.postMessage", error="internal_error", status=500)
                notices = QueueNotices(store, poster_of, in_parallel)
                notices.waiting(second)
                await asyncio.to_thread(slack.wait_for, lambda: len(slack.calls_to("chat.postMessage")) >= 2, 5)
                await asyncio.sleep(2.5)  # the poster's wait before it posts again, had it not found a post
                await notices.stop()
                assert len(told(first.thread_ts)) == 2, "the new notice was taken as posted by the earlier one"
            finally:
                await store.close()

    asyncio.run(main())

