"""A deep backlog in one channel draining faster than one turn a second: notices go out at most one a second per
channel (Slack's limit), and each must go to a thread that will still wait, not to the one about to be answered;
else those who wait longest are never told, and every notice posted says "1 earlier message" just before its
answer comes."""

from __future__ import annotations

import asyncio

from bridge.notices import QueueNotices
from bridge.store import open_store
from tests.unit.test_queue_notice_ends import EditingPoster
from tests.unit.test_queue_notice_restart import notices
from tests.unit.test_relay import mention

THREADS = 30
TURN_SECONDS = 0.4  # the agents answer in 0.4 s: the queue drains at 2.5 turns a second


class TimedPoster(EditingPoster):
    def __init__(self) -> None:
        super().__init__()
        self.posted_at: dict[str, float] = {}

    async def post(self, channel: str, thread_ts: str, part: object, **_: object) -> str:
        ts = await super().post(channel, thread_ts, part)
        self.posted_at[thread_ts] = asyncio.get_running_loop().time()
        return ts


def test_the_threads_that_wait_longest_are_told_they_are_queued(database_url: str) -> None:
    async def main() -> tuple[dict[str, float], dict[str, float], list[tuple[str, str]]]:
        store = open_store(database_url)
        await store.open()
        poster = TimedPoster()
        loop = asyncio.get_running_loop()
        started: dict[str, float] = {}
        try:
            turns = [mention(n, f"question {n}") for n in range(1, THREADS + 1)]
            ids = []
            for n, turn in enumerate(turns, start=1):
                turn_id = await store.accept_turn(turn, f"o{n}")
                assert turn_id is not None
                ids.append(turn_id)
            queue: QueueNotices = notices(store, poster)
            for turn in turns[1:]:
                queue.waiting(turn)
            for turn, turn_id in zip(turns, ids, strict=True):  # the channel's worker, one turn at a time
                assert await store.take_turn(turn_id) is not None
                started[turn.thread_ts] = loop.time()
                queue.started((turn.team_id, turn.channel_id, turn.thread_ts))
                await asyncio.sleep(TURN_SECONDS)
                await store.finish_turn(turn_id, "done")
            await queue.stop()
            return poster.posted_at, started, poster.posts
        finally:
            await store.close()

    posted_at, started, posts = asyncio.run(main())
    first = min(started.values())
    # Whoever waited 6 s or more (the queue's back half) should have been told while waiting, before the last
    # second of the wait; Slack's one-a-second allowed that many notices long before.
    long_waits = [t for t, at in started.items() if at - first >= 6.0]
    told_in_time = [t for t in long_waits if t in posted_at and started[t] - posted_at[t] >= 1.0]
    assert len(told_in_time) >= len(long_waits) // 2, (
        f"{len(long_waits)} threads waited 6 s or more; told at least 1 s before their turn: {len(told_in_time)};"
        f" notices: {[(t, round(started[t] - posted_at[t], 2), text[28:40]) for t, text in posts]}"
    )


def test_where_threads_run_at_once_a_thread_waiting_long_is_still_told(database_url: str) -> None:
    """Threads run at once (Letta conversations): the channel's turns start every 0.25 s, from all its threads, while
    each thread's own turns take 5 s. A thread with two turns ahead in its thread waits about 10 s: it is told, not
    judged 'its turn comes within a second' from the channel's pace."""

    async def main() -> list[tuple[str, str]]:
        store = open_store(database_url)
        await store.open()
        poster = EditingPoster()

        async def poster_of(team_id: str) -> EditingPoster:
            return poster

        async def in_parallel(team_id: str, channel_id: str) -> bool:
            return True

        try:
            waiting = []
            for root in (1, 2, 3):  # three threads, three mentions each, all waiting in their threads
                waiting.append(mention(root, f"q{root}"))
                for k in (1, 2):
                    waiting.append(mention(10 * root + k, f"q{root}-{k}", thread=root))
            for i, turn in enumerate(waiting, start=1):
                assert await store.accept_turn(turn, f"o{i}") is not None
            queue = QueueNotices(store, poster_of, in_parallel)  # type: ignore[arg-type]  # a double
            for turn in waiting:
                queue.waiting(turn)
            queue.started(("T1", "C1", "98.000001"))  # two other threads' turns began just now
            queue.started(("T1", "C1", "99.000001"))
            for k in range(16):  # other threads of the channel start their turns every 0.25 s
                queue.started(("T1", "C1", f"{100 + k}.000001"))
                await asyncio.sleep(0.25)
            await queue.stop()
            return poster.posts
        finally:
            await store.close()

    posts = asyncio.run(main())
    assert posts, "no thread told it waits, in 4 s, though each waits two 5 s turns of its own"
