"""A turn that starts waiting for the socket while the App Server is still down (restarting) was failed as
unreachable although the server came back well within the turn's connect_timeout: its wait cut short only the
backoff running when it began, and the next backoff (grown) was waited in full. Now the socket is tried every
backoff_base while anyone waits for it."""

from __future__ import annotations

import asyncio

import pytest

from bridge.letta.appserver import AppServerClient, Finished, TurnEvent
from tests.fakes.appserver import FakeAppServer
from tests.unit.test_appserver_client import _Outage, turn


def test_a_turn_waiting_while_the_server_restarts_reaches_it_when_back(
    fake: FakeAppServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = fake.add_agent("alice")
    # No jitter: the reconnect tries at 0.5, 1, 2, 4 and 8 s.
    monkeypatch.setattr("bridge.letta.appserver.socket.random.random", lambda: 1.0)

    async def main() -> list[TurnEvent]:
        outage = _Outage(fake.port)
        client = AppServerClient(await outage.up(), request_timeout=2.0, backoff_base=0.5, connect_timeout=3.0)
        try:
            conversation = await client.create_conversation(alice, "T1:C1:5.0")
            await outage.down()
            await asyncio.sleep(2.5)  # restarting: the backoff has grown (tries at 0.5, 1, 2, then 4 s apart)

            async def back() -> None:
                await asyncio.sleep(0.5)  # back 0.5 s into the turn's 3 s wait
                await outage.up()

            task = asyncio.ensure_future(back())
            try:
                return await turn(client, alice, conversation.id, "otid-back")
            finally:
                await task
        finally:
            await client.aclose(wait=5.0, force=True)

    events = asyncio.run(main())
    assert isinstance(events[-1], Finished) and events[-1].replies == ("alice says hi",)
