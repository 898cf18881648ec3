"""The per-agent and per-conversation send locks: one send at a time per key, and no entry left behind once
nobody holds or waits on it (a conversation per Slack thread would otherwise grow the maps for ever)."""

from __future__ import annotations

import asyncio

from bridge.letta.appserver import AppServerClient, Finished
from bridge.letta.locks import AgentLocks
from tests.fakes.appserver import FakeAppServer


def test_a_thousand_threads_leave_no_lock_behind() -> None:
    async def main() -> None:
        locks = AgentLocks()

        async def one(key: str) -> None:
            async with locks.hold([key, "agent-shared"]):
                await asyncio.sleep(0)

        await asyncio.gather(*(one(f"local-conv-{n}") for n in range(1000)))
        assert len(locks._locks) == 0

    asyncio.run(main())


def test_two_users_of_one_key_still_take_turns_and_a_cancelled_waiter_leaves_nothing() -> None:
    async def main() -> None:
        locks = AgentLocks()
        inside: list[str] = []
        order: list[str] = []

        async def use(name: str, key: str, hold: float) -> None:
            async with locks.hold([key]):
                inside.append(name)
                assert inside == [name], inside  # nobody else inside the same key
                order.append(name)
                await asyncio.sleep(hold)
                inside.remove(name)

        first = asyncio.ensure_future(use("first", "local-conv-1", 0.05))
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(use("cancelled", "local-conv-1", 0))
        second = asyncio.ensure_future(use("second", "local-conv-1", 0.01))
        await asyncio.sleep(0.01)
        assert len(locks._locks) == 1  # one entry, held by one and waited on by two
        waiting.cancel()
        await asyncio.gather(first, second, waiting, return_exceptions=True)
        assert order == ["first", "second"]
        assert len(locks._locks) == 0
        # A user arriving after the entry went away still waits for one that holds a fresh one.
        third = asyncio.ensure_future(use("third", "local-conv-1", 0.05))
        await asyncio.sleep(0)
        await use("fourth", "local-conv-1", 0)
        await third
        assert order[-2:] == ["third", "fourth"] and len(locks._locks) == 0

    asyncio.run(main())


def test_the_app_server_client_keeps_no_lock_per_finished_conversation() -> None:
    fake = FakeAppServer(scale=0.001)
    fake.start()
    alice = fake.add_agent("alice")

    async def main() -> None:
        client = AppServerClient(fake.url, request_timeout=2.0)
        try:
            for n in range(20):
                conversation = await client.create_conversation(alice, f"T1:C1:{n}.0")
                events = [e async for e in client.send(alice, conversation.id, "hi", f"otid-{n}")]
                assert isinstance(events[-1], Finished) and events[-1].replies == ("alice says hi",)
            assert len(client._locks) == 0
        finally:
            await client.aclose(wait=5.0, force=True)

    try:
        asyncio.run(main())
    finally:
        fake.stop()
