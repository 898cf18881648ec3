"""A Stop whose look for its send's run by otid misses (Letta links an otid to its run only once it takes the
agent's lock: the send has gone, its run is not known yet) still cancels that run: the send is marked stopped and
its run is cancelled as soon as its first event names it. Letta is the fake 0.16.8 with Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bridge.domain import AgentRef, Target, Turn
from bridge.letta.client import DEFAULT_CONVERSATION, LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.locks import AgentLocks, EarlierSends
from bridge.letta.models import LettaMessage
from bridge.stopping import RunningTurn, TurnStops
from bridge.store import open_store
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_leaves_other_clients_runs import bridge_send

TURN = Turn("T1", "C1", "1.000001", "1.000001", "U1", "a long question", "Ev1")


class HeldSends(LettaClient):
    """A client whose streamed sends reach Letta only once `gate` is set: the Stop comes while the send is on its
    way, before Letta knows its otid."""

    gate: asyncio.Event

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[LettaMessage]:
        if path.endswith("/messages"):
            await self.gate.wait()
        async for item in super()._stream(path, body):
            yield item


Stop = Callable[[TurnStops, RunningTurn, HeldSends], Awaitable[None]]


async def _stopped_on_its_way(letta: FakeLetta, tmp_path: Path, alice: AgentRef, stop: Stop) -> None:
    """The turn's background send to alice on its way, held before Letta (`HeldSends`), when `stop` comes; then the
    send's run, to its end (it says `cancelled`)."""
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    client = HeldSends(letta.base_url)
    client.gate = asyncio.Event()
    client.locks = AgentLocks(EarlierSends(ended=True))
    try:
        assert await client.has_resume()
        turn_id = await store.accept_turn(TURN, "otid-1")
        assert turn_id is not None
        stops = TurnStops(store, client, 0)
        async with stops.track(turn_id, "T1", "C1", "1.000001") as running:
            running.target, running.otid = Target("agents", (alice,)), "otid-1"
            running.sending.add(alice.id)
            running.task = asyncio.create_task(bridge_send(client, alice.id, "otid-mine"))
            while not running.runs.of(alice.id):
                await asyncio.sleep(0.01)
            await stop(stops, running, client)
            await asyncio.gather(running.task, return_exceptions=True)
        await asyncio.to_thread(letta.wait_for, lambda: bool(letta.cancels))
        with contextlib.suppress(LettaError):
            async for _ in client.resume_conversation(DEFAULT_CONVERSATION, "otid-mine", alice.id):
                pass
    finally:
        await client.aclose()
        await store.close()


def test_a_send_whose_run_was_not_found_by_its_otid_is_cancelled_when_it_reports_its_run(tmp_path: Path) -> None:
    """The Stop finds no run for the send (nothing is cancelled then); once the send's first event names its run,
    that run is cancelled and it ends `cancelled`."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = AgentRef(letta.add_agent("alice"), "alice")
        letta.set_delay(alice.id, 1.5)

        async def stop(stops: TurnStops, running: RunningTurn, client: HeldSends) -> None:
            assert await stops.cancel_letta(running) == []  # the Stop: its look by otid misses
            client.gate.set()

        asyncio.run(asyncio.wait_for(_stopped_on_its_way(letta, tmp_path, alice, stop), 30))
        assert [runs for _, _, runs in letta.cancels if runs], f"the send's run went on after the Stop: {letta.cancels}"


def test_a_stop_waits_for_such_a_send_to_name_its_run_before_closing_its_stream(tmp_path: Path) -> None:
    """The Stop cancels the turn's task, which would close the send's stream before its first event: it waits (a
    few seconds at most) for the send to name its run, so that the run is cancelled rather than left going."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = AgentRef(letta.add_agent("alice"), "alice")
        letta.set_delay(alice.id, 1.5)

        async def stop(stops: TurnStops, running: RunningTurn, client: HeldSends) -> None:
            asyncio.get_running_loop().call_later(0.3, client.gate.set)  # Letta takes the send then
            assert await stops.stop(running.turn_id, "U2")

        asyncio.run(asyncio.wait_for(_stopped_on_its_way(letta, tmp_path, alice, stop), 30))
        assert [runs for _, _, runs in letta.cancels if runs], f"the send's run went on after the Stop: {letta.cancels}"
