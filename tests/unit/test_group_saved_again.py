"""A group's cached record is re-read for a binding saved after it was read (the channel connected again),
whatever the binding holds: 16c877c remembered bindings by content, so one saved again as it once was (a member
added back on Letta) kept the record read since for another binding, and a failed re-read played that older record
rather than the newer binding (a member the connect showed removed was asked)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.domain import AgentRef, Target
from bridge.letta.errors import Kind, LettaError
from bridge.letta.groups import GroupDetails
from bridge.letta.models import Agent, Group

A, B, M = AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob"), AgentRef("agent-m", "boss")


class ChangingLetta:
    def __init__(self, manager_type: str = "round_robin") -> None:
        self.members = ["agent-a", "agent-b"]
        self.manager_type = manager_type
        self.calls = 0

    async def get_group(self, group_id: str) -> Group:
        self.calls += 1
        manager = "agent-m" if self.manager_type != "round_robin" else None
        return Group.model_validate({
            "id": group_id, "manager_type": self.manager_type, "agent_ids": list(self.members),
            "manager_agent_id": manager, "max_turns": 2,
        })

    async def get_agent(self, agent_id: str) -> Agent:
        return Agent.model_validate({"id": agent_id, "name": {"agent-a": "alice", "agent-b": "bob",
                                                              "agent-m": "boss"}[agent_id]})


def bound(*agents: AgentRef, manager_type: str = "round_robin") -> Target:
    """A binding saved now (the channel connected): the relay gives the runner its bound_at as saved_at."""
    return Target("group", agents, "group-1", manager_type, "crew", broadcast=manager_type == "round_robin",
                  saved_at=datetime.now(UTC))


def test_a_binding_saved_again_as_it_was_once_is_looked_up_again() -> None:
    async def main() -> list[str]:
        letta = ChangingLetta()
        fake: Any = letta
        details = GroupDetails(fake)
        await details.complete(bound(A, B))  # channel X, connected with alice and bob
        letta.members = ["agent-a"]  # bob removed on Letta; channel Y connected: its answer shows alice
        assert [a.name for a in (await details.complete(bound(A))).agents] == ["alice"]
        letta.members = ["agent-a", "agent-b"]  # bob added back on Letta; channel Y connected again: alice, bob
        done = await details.complete(bound(A, B))
        return [a.name for a in done.agents]

    assert asyncio.run(main()) == ["alice", "bob"]  # bob, whom the connect just showed, is asked


class BlinkingLetta(ChangingLetta):
    """Answers the first lookup, then one 503 (a restart, a proxy's blip)."""

    async def get_group(self, group_id: str) -> Group:
        if self.calls == 1:
            self.calls += 1
            raise LettaError(Kind.SERVER_ERROR, "busy", status=503)
        return await super().get_group(group_id)


def test_a_binding_saved_since_the_record_is_not_played_with_the_older_record_when_a_lookup_fails() -> None:
    async def main() -> list[str]:
        letta = BlinkingLetta()
        fake: Any = letta
        details = GroupDetails(fake)
        await details.complete(bound(A, B))  # alice and bob, as read
        letta.members = ["agent-a"]  # bob removed on Letta; the channel connected again: its answer shows alice
        done = await details.complete(bound(A))  # the re-read meets a 503
        return [a.name for a in done.agents]

    assert asyncio.run(main()) == ["alice"]  # bob, removed on Letta and from the binding, is not asked


def test_a_managed_group_saved_since_keeps_the_manager_of_the_record_when_a_lookup_fails() -> None:
    """The store keeps a Letta group's members, not its manager: that is still the record's."""

    async def main() -> Target:
        letta = BlinkingLetta("supervisor")
        fake: Any = letta
        details = GroupDetails(fake)
        await details.complete(bound(A, B, manager_type="supervisor"))
        return await details.complete(bound(A, manager_type="supervisor"))  # connected again; the re-read: 503

    done = asyncio.run(main())
    assert ([a.name for a in done.agents], done.manager, done.max_turns) == (["alice"], M, 2)


def test_a_binding_saved_before_the_record_plays_the_last_record_when_a_lookup_fails() -> None:
    async def main() -> list[str]:
        letta = BlinkingLetta()
        fake: Any = letta
        details = GroupDetails(fake, ttl=0.0)  # each turn past the cache's time
        old = dataclasses.replace(bound(A, B), saved_at=datetime.now(UTC) - timedelta(days=1))
        letta.members = ["agent-a"]  # bob removed on Letta since the channel was connected
        await details.complete(old)
        done = await details.complete(old)  # the lookup meets a 503: the record read last is nearer to now
        return [a.name for a in done.agents]

    assert asyncio.run(main()) == ["alice"]


def test_two_channels_saved_with_different_members_do_not_look_the_group_up_on_every_turn() -> None:
    async def main() -> int:
        letta = ChangingLetta()
        fake: Any = letta
        details = GroupDetails(fake)
        one = dataclasses.replace(bound(A), saved_at=datetime.now(UTC) - timedelta(hours=1))  # before bob joined
        two = bound(A, B)  # connected after bob joined
        for _ in range(5):  # turns in #one and #two, alternately, within the cache's five minutes
            assert [a.name for a in (await details.complete(one)).agents] == ["alice", "bob"]
            assert [a.name for a in (await details.complete(two)).agents] == ["alice", "bob"]
        return letta.calls

    assert asyncio.run(main()) <= 2  # #two's binding was saved after the first read: one more, then none
