"""A process that just started ends a dead process's Stop (StopEnd.finish -> TurnStops.cancel_letta) before its
client ever sent, so before anything asked whether the server keeps background runs (has_resume): the dead
process's send, still running on Letta, must be cancelled all the same. Letta is the fake 0.16.8."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.domain import AgentRef, Target, Turn
from bridge.letta.client import DEFAULT_CONVERSATION, LettaClient
from bridge.letta.locks import AgentLocks, EarlierSends
from bridge.letta.own_runs import OwnSend
from bridge.letta.patterns import step_otid
from bridge.stopping import RunningTurn, TurnStops
from bridge.store import open_store
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_leaves_other_clients_runs import bridge_send

TURN = Turn("T1", "C1", "1.000001", "1.000001", "U1", "a long question", "Ev1")


def test_a_fresh_client_finds_the_send_by_its_otid() -> None:
    """A client that never asked has_resume (its process just started) still finds a background send's run by the
    otid it carried, and cancels it."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 1.5)

        async def main() -> dict[str, str]:
            sender, stopper = LettaClient(letta.base_url), LettaClient(letta.base_url)
            sender.locks = AgentLocks(EarlierSends(ended=True))
            try:
                bridge = asyncio.create_task(bridge_send(sender, alice, "otid-mine"))
                await asyncio.to_thread(letta.wait_for, lambda: len(letta.active_runs()) == 1)
                cancelled = await stopper.cancel_agent(alice, [OwnSend("otid-mine", DEFAULT_CONVERSATION)])
                await asyncio.gather(bridge, return_exceptions=True)
                return cancelled
            finally:
                await sender.aclose()
                await stopper.aclose()

        cancelled = asyncio.run(asyncio.wait_for(main(), 30))
        assert len(cancelled) == 1, f"a just-started process did not find the dead send's run: {cancelled}"


def test_stop_end_after_a_restart_cancels_the_dead_process_send(tmp_path: Path) -> None:
    """The dead process journaled its background send (step_otid) to alice's own thread; the next process, whose
    client never sent, ends the turn's stop: that run is cancelled."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = AgentRef(letta.add_agent("alice"), "alice")
        letta.set_delay(alice.id, 1.5)

        async def main() -> list[str]:
            store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
            await store.open()
            dead, fresh = LettaClient(letta.base_url), LettaClient(letta.base_url)
            dead.locks = AgentLocks(EarlierSends(ended=True))
            try:
                turn_id = await store.accept_turn(TURN, "otid-1")
                assert turn_id is not None
                await store.step_sending(turn_id, alice.id)
                gone = asyncio.create_task(bridge_send(dead, alice.id, step_otid("otid-1", alice.id)))
                await asyncio.to_thread(letta.wait_for, lambda: len(letta.active_runs()) == 1)
                stops = TurnStops(store, fresh, 0)
                target = Target("agents", (alice,))
                running = RunningTurn(turn_id, "T1", "C1", "1.000001", target=target, otid="otid-1")
                cancelled = await stops.cancel_letta(running)
                await asyncio.gather(gone, return_exceptions=True)
                return cancelled
            finally:
                await dead.aclose()
                await fresh.aclose()
                await store.close()

        cancelled = asyncio.run(asyncio.wait_for(main(), 30))
        assert cancelled == [alice.id], f"the dead process's run was left going: {cancelled}"
