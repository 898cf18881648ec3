"""Letta stopped behind a plain reverse proxy (nginx answers its own 502 page to everything), in a fresh
process (the resume probe not answered yet): each probe is asked five times over 7.5 s (PROBE_AGAIN), and a failure
was not kept, so each agent of the turn probed again: a three-agent turn said Letta's failure after 22 s. The
failure is kept for PROBE_FRESH: only the first agent waits."""

from __future__ import annotations

import asyncio
import time

from bridge.domain import AgentFailure, AgentRef, Target, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from tests.fakes.letta import FakeLetta
from tests.unit.test_letta_down_behind_a_proxy import NGINX_502
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript


def test_letta_down_behind_a_proxy_is_said_without_probing_each_agent_for_seconds() -> None:
    with FakeLetta(version="0.16.8") as letta:
        agents = tuple(AgentRef(letta.add_agent(name), name) for name in ("alice", "bob", "carol"))
        target = Target("agents", agents)
        letta.fail_next("*", r".*", 502, raw=NGINX_502, headers={"server": "nginx/1.25.3",
                                                                 "content-type": "text/html"}, times=10_000)

        async def go() -> tuple[list[TurnEvent], float]:
            client = LettaClient(letta.base_url)
            started = time.monotonic()
            try:
                runner = BridgeRunner(client, patience=1.0)
                events = [e async for e in runner.run(target, TurnInput("hi all", OTID, "maria"), NoTranscript(),
                                                      MemoryJournal())]
                return events, time.monotonic() - started
            finally:
                await client.aclose()

        events, took = asyncio.run(go())
        failures = [e for e in events if isinstance(e, AgentFailure)]
        assert len(failures) >= 1 and not letta.sends()
        assert took < 12.0, f"the thread was told after {took:.1f}s"  # one probe's PROBE_AGAIN, not one an agent
