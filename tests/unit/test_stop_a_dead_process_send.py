"""A Stop ended by the process that takes a killed one's turn over (StopEnd.finish -> TurnStops.cancel_letta)
cancels the run the dead process's send made, on a server with conversations but no Redis (0.16.8): nothing finds
that run by its otid there, so the send journals the run its first event reported with its step, and the next
process cancels exactly that one (docs/guarantees.md: a Stop cancels the runs of the stopped turn's own sends)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bridge.domain import AgentRef, Target, Turn, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.locks import AgentLocks, EarlierSends
from bridge.stopping import RunningTurn, TrackedJournal, TurnStops
from bridge.store import Store, open_store
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import NoTranscript

TURN = Turn("T1", "C1", "1.000001", "1.000001", "U1", "a long question", "Ev1")


async def _turn(stops: TurnStops, store: Store, client: LettaClient, turn_id: int, alice: AgentRef) -> None:
    """The turn as a process runs it: its send to alice's own thread, journaled as TurnAsking journals it."""
    async with stops.track(turn_id, "T1", "C1", "1.000001") as running:
        running.target, running.otid = Target("agents", (alice,)), "otid-1"
        journal = TrackedJournal(store, turn_id, "otid-1", "T1", "C1", running.sending, stopped=running.check)
        turn_input = TurnInput("a long question", "otid-1", "maria")
        async for _ in BridgeRunner(client).run(Target("agents", (alice,)), turn_input, NoTranscript(), journal):
            pass


async def _stopped_after_a_dead_send(
    letta: FakeLetta, database_url: str, alice: AgentRef, stop: Callable[[Store, LettaClient, int], Awaitable[None]]
) -> str:
    """A killed process's send to alice, still running on Letta; `stop` in the next process (its store, its client,
    the turn): the run the dead send made."""
    store = open_store(database_url)
    await store.open()
    dead, fresh = LettaClient(letta.base_url), LettaClient(letta.base_url)
    dead.locks = AgentLocks(EarlierSends(ended=True))
    try:
        turn_id = await store.accept_turn(TURN, "otid-1")
        assert turn_id is not None
        gone = asyncio.create_task(_turn(TurnStops(store, dead, 0), store, dead, turn_id, alice))
        await asyncio.to_thread(letta.wait_for, lambda: len(letta.active_runs()) == 1)
        await asyncio.sleep(0.5)  # its first event came, long before anyone would take the turn over
        [run] = letta.active_runs()
        await stop(store, fresh, turn_id)
        await asyncio.gather(gone, return_exceptions=True)
        return run
    finally:
        await dead.aclose()
        await fresh.aclose()
        await store.close()


def test_stop_end_without_redis_cancels_the_dead_process_send(database_url: str) -> None:
    """The dead process's send still runs on Letta when the next process ends the turn's stop: its run is
    cancelled (before, the next process knew no run of it and cancelled nothing)."""
    with FakeLetta(version="0.16.8", redis=False) as letta:
        alice = AgentRef(letta.add_agent("alice"), "alice")
        letta.set_delay(alice.id, 3.0)
        cancelled: list[str] = []

        async def stop_end(store: Store, fresh: LettaClient, turn_id: int) -> None:
            running = RunningTurn(turn_id, "T1", "C1", "1.000001", target=Target("agents", (alice,)), otid="otid-1")
            cancelled.extend(await TurnStops(store, fresh, 0).cancel_letta(running))

        run = asyncio.run(asyncio.wait_for(_stopped_after_a_dead_send(letta, database_url, alice, stop_end), 30))
        named = [runs for kind, agent, runs in letta.cancels if runs]
        assert cancelled == [alice.id] and named == [[run]], f"the dead process's run was left going: {letta.cancels}"
        assert len(letta.inputs) == 1, "the stopped turn was sent again"


def test_a_resumed_turn_stopped_while_waiting_for_its_earlier_send_cancels_that_send(database_url: str) -> None:
    """After a restart the turn is resumed: its runner waits for the dead process's send to end before reading its
    answer. A Stop then cancels that send's run, rather than letting it run to its end."""
    with FakeLetta(version="0.16.8", redis=False) as letta:
        alice = AgentRef(letta.add_agent("alice"), "alice")
        letta.set_delay(alice.id, 3.0)

        async def stop_resumed(store: Store, fresh: LettaClient, turn_id: int) -> None:
            stops = TurnStops(store, fresh, 0)
            resumed = asyncio.create_task(_turn(stops, store, fresh, turn_id, alice))
            while turn_id not in stops.running:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # resumed, it waits for the dead process's send to end
            assert await stops.stop(turn_id, "U2")
            await asyncio.gather(resumed, return_exceptions=True)

        run = asyncio.run(asyncio.wait_for(_stopped_after_a_dead_send(letta, database_url, alice, stop_resumed), 30))
        named = [runs for kind, agent, runs in letta.cancels if runs]
        assert named == [[run]], f"the dead process's run {run!r} was left going: {letta.cancels}"
        assert len(letta.inputs) == 1, "the stopped turn was sent again"
