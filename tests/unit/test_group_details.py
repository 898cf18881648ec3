"""bridge/letta/groups.py GroupDetails: one lookup per group (cached), different groups looked up at once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from bridge.domain import AgentRef, Target
from bridge.letta.errors import Kind, LettaError
from bridge.letta.groups import GroupDetails
from bridge.letta.models import Agent, Group


class SlowLetta:
    """get_group waits until released, counting how many lookups are in flight at once."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.in_flight = 0
        self.most = 0
        self.release = asyncio.Event()

    async def get_group(self, group_id: str) -> Group:
        self.calls.append(group_id)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        return Group.model_validate(
            {"id": group_id, "manager_type": "round_robin", "agent_ids": ["agent-a"], "max_turns": 3}
        )


def target(group_id: str) -> Target:
    return Target("group", (AgentRef("agent-a", "alice"),), group_id, "round_robin", "crew")


def test_many_groups_are_looked_up_at_once_and_each_group_once() -> None:
    async def main() -> tuple[SlowLetta, list[Target]]:
        letta = SlowLetta()
        fake: Any = letta
        details = GroupDetails(fake)
        asks = [details.complete(target(g)) for g in ("group-1", "group-2", "group-3", "group-1", "group-2")]
        gathered = asyncio.gather(*asks)
        for _ in range(20):  # let every lookup start that can
            await asyncio.sleep(0)
        letta.release.set()
        return letta, list(await gathered)

    letta, done = asyncio.run(main())
    assert letta.most == 3  # before the fix, one lookup at a time for every group: 1
    assert sorted(letta.calls) == ["group-1", "group-2", "group-3"]  # the repeats waited for their group's
    assert all(t.max_turns == 3 for t in done)


def test_where_letta_plays_the_group_only_a_manager_is_looked_up() -> None:
    async def main() -> list[str]:
        letta = SlowLetta()
        letta.release.set()
        fake: Any = letta
        details = GroupDetails(fake)
        await details.complete(target("group-rr"), limits=False)  # the server runner: nothing to look up
        supervised = Target("group", (AgentRef("agent-a", "alice"),), "group-sup", "supervisor", "crew")
        await details.complete(supervised, limits=False)
        await details.complete(target("group-rr"))  # the bridge runner plays it: it needs max_turns
        return letta.calls

    assert asyncio.run(main()) == ["group-sup", "group-rr"]


class TwoMembers:
    """A round robin group of alice and bob on Letta; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def get_group(self, group_id: str) -> Group:
        self.calls.append("group")
        return Group.model_validate(
            {"id": group_id, "manager_type": "round_robin", "agent_ids": ["agent-a", "agent-b"], "max_turns": 3}
        )

    async def get_agent(self, agent_id: str) -> Agent:
        self.calls.append("agent")
        return Agent.model_validate({"id": agent_id, "name": "bob"})


def test_two_channels_of_one_group_do_not_look_the_group_up_on_every_turn() -> None:
    """Two channels bound to one group whose saved members differ (one connected before bob joined on Letta):
    each evicted the other's cached lookup, so every turn asked Letta for the group (and for bob's name)."""
    before = Target("group", (AgentRef("agent-a", "alice"),), "group-1", "round_robin", "crew")  # #one, connected first
    after = Target(
        "group", (AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob")), "group-1", "round_robin", "crew"
    )  # #two, connected after bob joined

    async def main() -> list[str]:
        letta = TwoMembers()
        fake: Any = letta
        details = GroupDetails(fake)
        for _ in range(5):  # turns in #one and #two, alternately, within a minute
            assert [a.name for a in (await details.complete(before)).agents] == ["alice", "bob"]
            assert [a.name for a in (await details.complete(after)).agents] == ["alice", "bob"]
        return letta.calls

    calls = asyncio.run(main())
    assert calls.count("group") <= 2, f"10 turns of one group within the cache's 5 minutes asked Letta: {calls}"


def test_a_group_whose_record_cannot_be_read_now_is_played_as_saved_with_its_manager() -> None:
    """Reading the record on every group's turn (for its members) must not make a Letta blip on GET /v1/groups fail
    a managed group whose manager the binding saved: it is played as saved, as before the members were read."""

    class Down:
        async def get_group(self, group_id: str) -> Group:
            raise LettaError(Kind.SERVER_ERROR, "busy", status=503)

    supervised = Target("group", (AgentRef("agent-a", "alice"),), "group-sup", "supervisor", "crew",
                        manager=AgentRef("agent-m", "boss"))
    fake: Any = Down()
    done = asyncio.run(GroupDetails(fake).complete(supervised))
    assert done == supervised
    unsaved = dataclasses.replace(supervised, manager=None)  # without its manager it cannot be played at all
    with pytest.raises(LettaError):
        asyncio.run(GroupDetails(fake).complete(unsaved))


class Changed:
    """A group connected as [alice, bob] with manager boss; on Letta bob was then replaced by carol and boss by
    chief. The first lookup answers; later ones meet a Letta blip (503)."""

    def __init__(self, manager_type: str) -> None:
        self.manager_type = manager_type
        self.lookups = 0

    async def get_group(self, group_id: str) -> Group:
        self.lookups += 1
        if self.lookups > 1:
            raise LettaError(Kind.SERVER_ERROR, "busy", status=503)
        return Group.model_validate({
            "id": group_id, "manager_type": self.manager_type, "agent_ids": ["agent-a", "agent-c"],
            "manager_agent_id": "agent-n", "max_turns": 2,
        })

    async def get_agent(self, agent_id: str) -> Agent:
        return Agent.model_validate({"id": agent_id, "name": {"agent-c": "carol", "agent-n": "chief"}[agent_id]})


@pytest.mark.parametrize("manager_type", ["round_robin", "supervisor", "dynamic"])
def test_a_blip_after_the_record_was_read_does_not_bring_back_a_removed_member(
    manager_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: once the cache ran out, a failed lookup played the group as saved at connect, asking bob (removed
    on Letta) again, or the old manager; the record read last time is the group's nearest to now."""
    boss = AgentRef("agent-m", "boss") if manager_type != "round_robin" else None
    saved = Target("group", (AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob")), "group-1", manager_type,
                   manager=boss)

    async def main() -> list[Target]:
        fake: Any = Changed(manager_type)
        details = GroupDetails(fake, ttl=0.0)  # each turn past the cache's time (5 minutes in production)
        return [await details.complete(saved), await details.complete(saved)]

    with caplog.at_level(logging.WARNING, logger="bridge.letta.groups"):
        first, second = asyncio.run(main())
    for played in (first, second):
        assert [a.name for a in played.agents] == ["alice", "carol"], "bob, removed on Letta, is asked again"
        assert played.max_turns == 2
        if boss is not None:
            assert played.manager == AgentRef("agent-n", "chief"), "the manager replaced on Letta is asked again"
    assert "could not be read" in caplog.text and "the last one read is used" in caplog.text, caplog.text


def test_a_group_looked_up_leaves_no_lock_behind() -> None:
    """Every group a process plays is looked up: a lock kept per group ever seen would grow with them."""

    async def main() -> int:
        letta = SlowLetta()
        letta.release.set()
        fake: Any = letta
        details = GroupDetails(fake)
        await asyncio.gather(*(details.complete(target(f"group-{i}")) for i in range(50)))
        return len(details._locks)

    assert asyncio.run(main()) == 0
