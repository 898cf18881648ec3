"""A Letta group one of whose members was deleted on Letta: real 0.16.8 keeps the deleted agent's id in the
group's `agent_ids` (the JSON column; only groups_agents cascades), so the record still lists it. The group plays
without it, and connects without it, instead of failing as a whole on that member's lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bridge.domain import AgentRef, AgentReply, Target
from bridge.letta.client import LettaClient
from bridge.targets import TargetError, resolve_target
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns_play import run


def connect(letta: FakeLetta, ids: Sequence[str]) -> Target:
    """`ids` looked up as connecting a channel does."""

    async def go() -> Target:
        client = LettaClient(letta.base_url)
        try:
            return await resolve_target(client, ids)
        finally:
            await client.aclose()

    return asyncio.run(go())


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

    target = connect(letta, [group])
    assert [a.name for a in target.agents] == ["alice"], target
    assert target.manager == AgentRef(boss, "boss")


@pytest.mark.parametrize("pattern", ["sleeptime", "supervisor"])
def test_a_group_whose_members_were_all_deleted_connects_where_its_manager_answers_alone(
    letta: FakeLetta, pattern: str
) -> None:
    """A sleeptime group asks only its main agent (the manager), a supervisor answers even when no worker did.
    Before: refused at connect, 'every agent … was deleted on Letta, so nobody would answer'."""
    member, boss = letta.add_agent("member"), letta.add_agent("boss")
    group = letta.add_group([member], manager_type=pattern, manager_agent_id=boss)
    letta.remove_agent(member)
    target = connect(letta, [group])
    assert target.manager == AgentRef(boss, "boss") and target.agents == (), target
    events = run(letta, target)
    assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["boss"], events


@pytest.mark.parametrize("pattern", ["round_robin", "dynamic", "sleeptime"])
def test_a_group_where_nobody_is_left_to_answer_is_refused_in_plain_words(letta: FakeLetta, pattern: str) -> None:
    """A round robin asks its members, a dynamic manager only picks among them; a sleeptime group whose main agent
    was deleted too has nobody either."""
    alice, boss = letta.add_agent("alice"), letta.add_agent("boss")
    group = letta.add_group([alice], manager_type=pattern, manager_agent_id=None if pattern == "round_robin" else boss)
    letta.remove_agent(alice)
    if pattern == "sleeptime":
        letta.remove_agent(boss)
    with pytest.raises(TargetError) as refused:
        connect(letta, [group])
    assert str(refused.value).startswith(
        f"All of group {group}'s agents were deleted on Letta, so nobody would answer: "
    ), refused.value
