"""bridge/post_order.py: the runner runs on while what it owed is posted, oldest first; each side's failure ends
the other as it should; what the runner puts in the thread itself waits for what was owed before it."""

from __future__ import annotations

import asyncio

import pytest

from bridge.post_order import PostOrder


def test_the_runner_runs_on_while_an_earlier_reply_is_posted() -> None:
    async def main() -> None:
        order, log = PostOrder(), []
        posting = asyncio.Event()

        async def post() -> None:
            log.append("post begins")
            await posting.wait()
            log.append("post ends")

        async def ask() -> str:
            log.append("alice answered")
            order.owed()
            await asyncio.sleep(0.01)
            log.append("bob asked")
            posting.set()
            order.owed()
            return "done"

        assert await order.ask_while_posting(ask(), post) == "done"
        assert log.index("bob asked") < log.index("post ends"), log
        assert log.count("post begins") == 2, "bob's reply was posted in a pass of its own"

    asyncio.run(main())


def test_a_runner_failure_is_raised_after_what_it_owed_is_posted() -> None:
    async def main() -> None:
        order, posted = PostOrder(), []

        async def post() -> None:
            await asyncio.sleep(0.01)
            posted.append("alice")

        async def ask() -> None:
            order.owed()
            raise RuntimeError("letta went away")

        with pytest.raises(RuntimeError, match="letta went away"):
            await order.ask_while_posting(ask(), post)
        assert posted == ["alice"]

    asyncio.run(main())


def test_a_failure_to_post_cancels_the_runner() -> None:
    async def main() -> None:
        order = PostOrder()
        cancelled = asyncio.Event()

        async def post() -> None:
            raise LookupError("not_in_channel")

        async def ask() -> None:
            order.owed()
            try:
                await asyncio.sleep(30)  # asking the next agent
            except asyncio.CancelledError:
                cancelled.set()
                raise

        with pytest.raises(LookupError):
            await asyncio.wait_for(order.ask_while_posting(ask(), post), 5)
        assert cancelled.is_set()

    asyncio.run(main())


def test_cancelling_the_turn_cancels_its_runner() -> None:
    async def main() -> None:
        order = PostOrder()
        cancelled = asyncio.Event()

        async def post() -> None:
            pass

        async def ask() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        turn = asyncio.create_task(order.ask_while_posting(ask(), post))
        await asyncio.sleep(0.01)
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn
        assert cancelled.is_set()

    asyncio.run(main())


def test_a_message_of_the_runner_s_own_waits_for_what_was_owed_before_it() -> None:
    async def main() -> None:
        order, thread = PostOrder(), []
        posting = asyncio.Event()

        async def post() -> None:
            await posting.wait()
            thread.append("alice's reply")

        async def ask() -> None:
            order.owed()
            waiting = asyncio.create_task(order.caught_up())
            await asyncio.sleep(0.01)
            assert not waiting.done(), "bob's draft would come before alice's reply"
            posting.set()
            await waiting
            thread.append("bob's draft")

        await order.ask_while_posting(ask(), post)
        assert thread == ["alice's reply", "bob's draft"]
        await asyncio.wait_for(order.caught_up(), 1)  # nothing owed: at once

    asyncio.run(main())
