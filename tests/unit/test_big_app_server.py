"""An App Server with more agents than the bridge lists: an agent past the list is still found by its id."""

from __future__ import annotations

import asyncio

from bridge.domain import Target
from bridge.letta.appserver_letta import AppServerLetta
from bridge.letta.errors import Kind, LettaError
from bridge.letta.paging import LIST_CAP
from bridge.targets import resolve_target
from tests.fakes.appserver import FakeAppServer


def test_an_agent_the_list_leaves_out_is_connected_by_its_id(fake: FakeAppServer) -> None:
    ids = [fake.add_agent(f"agent {n}") for n in range(LIST_CAP + 5)]

    async def main() -> tuple[Target, LettaError]:
        letta = AppServerLetta(fake.url)
        try:
            listed = {a.id for a in await letta.all_agents()}
            beyond = next(i for i in ids if i not in listed)
            target = await resolve_target(letta, [beyond])
            try:
                await letta.get_agent("agent-local-00000000-0000-0000-0000-000000000000")
            except LettaError as exc:
                return target, exc
            raise AssertionError("an unknown id was found")
        finally:
            await letta.aclose(wait=1)

    target, unknown = asyncio.run(main())
    [agent] = target.agents
    assert agent.name == fake.agents[agent.id]["name"]
    assert unknown.kind == Kind.NOT_FOUND
