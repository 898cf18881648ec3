"""The agent cancel route on a server with conversations names only the runs of the stopped turn's own sends: a send
that reported no run yet is found by its otid where the server can tell (a Redis server's background send), while
another client's run on the agent route goes on. Letta is the fake 0.16.8 with Redis."""

from __future__ import annotations

import asyncio

from bridge.letta.client import DEFAULT_CONVERSATION, LettaClient
from bridge.letta.locks import AgentLocks, EarlierSends
from bridge.letta.own_runs import OwnSend
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_leaves_other_clients_runs import bridge_send, script


def test_a_send_that_reported_no_run_yet_is_cancelled_by_its_otid_and_no_other_clients_run() -> None:
    """The Stop knows only the otid its send carried: the run is found by it, and only that run is cancelled."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 1.5)

        async def main() -> tuple[dict[str, str], list[str]]:
            sender, stopper = LettaClient(letta.base_url), LettaClient(letta.base_url)
            sender.locks = AgentLocks(EarlierSends(ended=True))  # a bridge started cleanly: its send goes at once
            try:
                assert await stopper.has_resume()
                other = asyncio.create_task(script(letta.base_url, alice))
                bridge = asyncio.create_task(bridge_send(sender, alice, "otid-mine"))
                await asyncio.to_thread(letta.wait_for, lambda: len(letta.active_runs()) == 2)
                cancelled = await stopper.cancel_agent(alice, [OwnSend("otid-mine", DEFAULT_CONVERSATION)])
                await asyncio.gather(bridge, return_exceptions=True)
                return cancelled, await other
            finally:
                await sender.aclose()
                await stopper.aclose()

        cancelled, script_stops = asyncio.run(asyncio.wait_for(main(), 30))
        assert len(cancelled) == 1, f"the Stop did not find its own send's run by its otid: {cancelled}"
        assert script_stops == ["end_turn"], f"the Stop cancelled another client's run: {script_stops}"
