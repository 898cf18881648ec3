"""A Letta group whose record changed on Letta after the channel was connected, or that the bridge cannot run:
the members asked are the group's now, a member the binding does not list is posted under its own name, a
supervisor listed among its own workers is asked once, as the supervisor, and a voice_sleeptime group is refused
at connect (its background agents answered in the thread, or every mention failed)."""

from __future__ import annotations

import asyncio

import pytest

from bridge.domain import AgentRef, AgentReply, Target, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.patterns import WORKERS_HEADER
from bridge.letta.runners import ServerRunner
from bridge.targets import TargetError, resolve_target
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript
from tests.unit.test_patterns_play import run


def test_a_member_removed_from_the_letta_group_after_connect_is_no_longer_asked(letta: FakeLetta) -> None:
    """The channel was connected to round-robin group [alice, bob]; on Letta bob was then replaced by carol
    (PATCH /v1/groups/{id}). The binding, as the store keeps it, still lists alice and bob."""
    alice, bob, carol = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("carol")
    group = letta.add_group([alice, bob], manager_type="round_robin")
    stored = Target("group", (AgentRef(alice, "alice"), AgentRef(bob, "bob")), group, "round_robin")
    letta.set_group_members(group, [alice, carol])  # the group's members changed on Letta
    events = run(letta, stored)
    speakers = [e.agent_name for e in events if isinstance(e, AgentReply)]
    assert speakers == ["alice", "carol"], f"the group's members on Letta are alice and carol, but {speakers} answered"


def test_a_member_added_to_a_server_run_dynamic_group_after_connect_is_posted() -> None:
    """0.11.7 runs the dynamic group itself, with its members as Letta has them now; carol joined the group after
    the channel was connected (when it had only alice). Letta runs carol, but her reply is never posted."""
    with FakeLetta(version="0.11.7") as letta:
        alice, carol, boss = letta.add_agent("alice"), letta.add_agent("carol"), letta.add_agent("boss")
        letta.set_reply(boss, lambda text: "DONE!" if "carol:" in text else "carol")
        group = letta.add_group([alice], manager_type="dynamic", manager_agent_id=boss, max_turns=1)
        stored = Target("group", (AgentRef(alice, "alice"),), group, "dynamic")  # as the store keeps it
        letta.set_group_members(group, [alice, carol])  # carol joined on Letta

        async def go() -> list[object]:
            client = LettaClient(letta.base_url)
            runner = ServerRunner(client, BridgeRunner(client), patience=5.0)
            try:
                turn = TurnInput("hi all", OTID, "maria")
                return [e async for e in runner.run(stored, turn, NoTranscript(), MemoryJournal())]
            finally:
                await client.aclose()

        events = asyncio.run(go())
        assert [i.agent_id for i in letta.inputs if i.agent_id == carol], "carol was not run by Letta"
        said = [(e.agent_name, e.text) for e in events if isinstance(e, AgentReply)]
        assert ("carol", "carol says hi") in said, f"carol answered on Letta but the thread got only {said}"


def test_a_voice_sleeptime_group_is_refused_at_connect(letta: FakeLetta) -> None:
    """Letta's group types include voice_sleeptime (manager_agent_id: the main agent, agent_ids: its background
    sleeptime agents). The bridge accepted such a group at connect, then asked the background agents in the thread
    and never the main agent (on 0.11.7, Letta refused every mention: "Type ManagerType.voice_sleeptime is not
    supported")."""
    main, sleeper = letta.add_agent("main"), letta.add_agent("sleeper")
    group = letta.add_group([sleeper], manager_type="voice_sleeptime", manager_agent_id=main)

    async def connect() -> str:
        client = LettaClient(letta.base_url)
        try:
            with pytest.raises(TargetError) as refused:
                await resolve_target(client, [group])
            return str(refused.value)
        finally:
            await client.aclose()

    said = asyncio.run(connect())
    assert said == (
        f"group {group} is a voice_sleeptime group, which the bridge cannot run: connect a round_robin, supervisor,"
        " dynamic or sleeptime group, or the agents themselves."
    )


def test_a_supervisor_listed_among_its_own_workers_still_gets_the_workers_answers(letta: FakeLetta) -> None:
    """Letta accepts a supervisor group whose manager_agent_id is also in agent_ids (checked on a real 0.11.7).
    The bridge runner asks the manager as a worker (step key = its id), then its supervisor step, keyed by the same
    id, is found answered in the journal and replayed: the manager never sees its workers' answers, and its
    worker reply comes out a second time as if it were the supervisor's."""
    alice, boss = letta.add_agent("alice"), letta.add_agent("boss")
    group = letta.add_group([boss, alice], manager_type="supervisor", manager_agent_id=boss)
    stored = Target("group", (AgentRef(boss, "boss"), AgentRef(alice, "alice")), group, "supervisor")
    events = run(letta, stored)
    to_boss = [i.text for i in letta.inputs if i.agent_id == boss]
    assert any(WORKERS_HEADER in text and "alice says hi" in text for text in to_boss), (
        f"the manager was never given its workers' answers; it was sent {to_boss}"
    )
    replies = [(e.agent_name, e.step) for e in events if isinstance(e, AgentReply)]
    assert len(replies) == len(set(replies)), f"one reply came out twice: {replies}"
