"""The look at an agent's active runs before this process's first send to it (LettaClient._one_send): a run left
going by an earlier process is waited out, but not a run 0.16.8 leaked long ago. 0.16.8 lists a non-streamed
conversation send's run as `created` for ever (reference/letta/README.md §19, played by the fake as captured), so
another client's such send made every first send to that agent after each start wait LETTA_BUSY_WAIT_SECONDS."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bridge.letta.client import LettaClient
from tests.fakes import letta_runs
from tests.fakes.letta import FakeLetta

MESSAGE = {"role": "user", "content": "hi", "otid": "o-1"}


@pytest.mark.parametrize(("age", "waited"), [(timedelta(hours=2), False), (timedelta(minutes=1), True)])
def test_a_run_leaked_long_ago_holds_no_send(age: timedelta, waited: bool) -> None:
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        leaked = letta_runs.start(letta, alice, "send_message")
        letta_runs.end(leaked, leak=True)  # as 0.16.8 leaves a non-streamed conversation send's run
        leaked.created = datetime.now(UTC) - age

        async def main() -> None:
            client = LettaClient(letta.base_url, busy_wait=1.0)
            try:
                await client.send_agent(alice, MESSAGE)
            finally:
                await client.aclose()

        asyncio.run(main())
        looks = [r for r in letta.requests if r.method == "GET" and r.path.startswith("/v1/runs")]
        assert len(letta.sends()) == 1
        assert (len(looks) > 1) is waited, looks


def test_run_lists_asked_at_once_on_a_server_with_one_route_all_answer() -> None:
    """revAD: the route fallback flipped one shared flag; lists asked at once (turns a restart cut, recovered
    together) each flipped it, and every other one asked the missing route again and failed with 'no route'."""
    from bridge.letta.client import LettaClient
    from tests.fakes.letta import FakeLetta

    with FakeLetta(version="0.12.1") as letta:
        agents = [letta.add_agent(f"a{i}") for i in range(5)]

        async def main() -> list[object]:
            client = LettaClient(letta.base_url)
            try:
                return await asyncio.gather(*(client.active_runs(a) for a in agents), return_exceptions=True)
            finally:
                await client.aclose()

        results = asyncio.run(main())
    assert all(isinstance(r, list) for r in results), [type(r).__name__ for r in results]
