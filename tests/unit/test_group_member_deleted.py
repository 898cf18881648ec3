"""A Letta group one of whose members was deleted on Letta: real 0.16.8 keeps the deleted agent's id in the
group's `agent_ids` (the JSON column; only groups_agents cascades), so the record still lists it. The group plays
without it, and connects without it, instead of failing as a whole on that member's lookup."""

from __future__ import annotations

import asyncio

from bridge.domain import AgentRef, AgentReply, Target
from bridge.letta.client import LettaClient
from bridge.targets import resolve_target
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns_play import run


def test_a_supervisor_group_whose_added_member_was_deleted_still_answers(letta: FakeLetta) -> None:
    """carol joined the group on Letta after the channel was connected, then was deleted. Before: her lookup's
    404 failed the read of the group record, and every turn of the channel said the group was unknown."""
    alice, bob, boss = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("boss")
    group = letta.add_group([alice, bob], manager_type="supervisor", manager_agent_id=boss)
    stored = Target("group", (AgentRef(alice, "alice"), AgentRef(bob, "bob")), group, "supervisor")
    carol = letta.add_agent("carol")
    letta.set_group_members(group, [alice, bob, carol])
    letta.remove_agent(carol)  # the record still lists carol, as real 0.16.8's does
    events = run(letta, stored)
    assert sorted(e.agent_name for e in events if isinstance(e, AgentReply)) == ["alice", "bob", "boss"], events


def test_a_group_whose_member_was_deleted_connects_with_the_members_that_exist(letta: FakeLetta) -> None:
    """Before: connecting (again) was refused, 'agent … was not found', though the group's turns would play."""
    alice, bob, boss = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("boss")
    group = letta.add_group([alice, bob], manager_type="supervisor", manager_agent_id=boss)
    letta.remove_agent(bob)

    async def connect() -> Target:
        client = LettaClient(letta.base_url)
        try:
            return await resolve_target(client, [group])
        finally:
            await client.aclose()

    target = asyncio.run(connect())
    assert [a.name for a in target.agents] == ["alice"], target
    assert target.manager == AgentRef(boss, "boss")
