"""What a process knows at start of the Letta sends an earlier one made (Store.sends_left_going, clients.
look_at_earlier_sends, AgentLocks): only when the journal shows one nobody saw end, within the last minutes, are the
agents' runs looked at before this process first sends to them; after a clean stop, no first send waits on a look."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bridge.clients import LettaServers, look_at_earlier_sends
from bridge.config import Settings
from bridge.domain import AgentFailure, AgentRef, AgentReply, Binding, Target
from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.locks import QUIET_KEPT, AgentLocks, EarlierSends
from bridge.store import Store
from bridge.store.approvals import ApprovalStore
from bridge.store.sql import Sql
from tests.fakes.letta import FakeLetta
from tests.unit.test_retention import accepted, asked
from tests.unit.test_store import run

REPLY = [AgentReply("alice", "an answer", "agent-a")]
FAILURE = AgentFailure("alice", "Letta did not answer in time", "timeout")
MESSAGE = {"role": "user", "content": "hi", "otid": "o-1"}


def since() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=10)


async def aged_steps(store: Store, minutes: float) -> None:
    then = datetime.now(UTC) - timedelta(minutes=minutes)
    when: object = then.isoformat() if hasattr(store, "_transact") else then
    await Sql(store).execute("UPDATE turn_steps SET updated_at=$1", when)


def test_a_fresh_journal_and_answered_steps_leave_nothing_going(database_url: str) -> None:
    async def body(store: Store) -> None:
        assert await store.sends_left_going(since()) is False
        turn = await accepted(store, 1)
        await store.step_sending(turn, "agent-a")
        await store.step_answered(turn, "agent-a", REPLY, None, None)
        assert await store.sends_left_going(since()) is False

    run(database_url, body)


@pytest.mark.parametrize(
    ("replies", "failure"), [(None, None), ([], FAILURE), (REPLY, FAILURE)], ids=["sending", "failed", "cut-short"]
)
def test_a_step_nobody_saw_end_is_left_going_for_ten_minutes(
    database_url: str, replies: list[AgentReply] | None, failure: AgentFailure | None
) -> None:
    async def body(store: Store) -> None:
        turn = await accepted(store, 1)
        await store.step_sending(turn, "agent-a")
        if replies is not None:
            await store.step_answered(turn, "agent-a", replies, failure, None)
        assert await store.sends_left_going(since()) is True
        await aged_steps(store, 11)
        assert await store.sends_left_going(since()) is False

    run(database_url, body)


def test_a_decision_sent_and_not_settled_is_left_going(database_url: str) -> None:
    async def body(store: Store) -> None:
        approvals = ApprovalStore(store)
        turn = await accepted(store, 1)
        sent, withdrawn = await approvals.ask([asked(turn, "call-1"), asked(turn, "call-2")])
        await approvals.sending(sent.id)
        assert await store.sends_left_going(since()) is True
        await approvals.settle(sent.id, "sent")
        assert await store.sends_left_going(since()) is False
        await approvals.settle(withdrawn.id, "stopped")  # stop_end: settled first, then the denial is sent
        assert await store.sends_left_going(since()) is False
        await approvals.sending(withdrawn.id)
        assert await store.sends_left_going(since()) is True  # a denial's answer is never recorded

    run(database_url, body)


def test_the_start_learns_it_from_the_journal(database_url: str) -> None:
    async def body(store: Store) -> None:
        earlier = EarlierSends()
        await look_at_earlier_sends(store, earlier)
        assert earlier.ended is True
        await store.step_sending(await accepted(store, 1), "agent-a")
        later = EarlierSends()
        await look_at_earlier_sends(store, later)
        assert later.ended is False

    run(database_url, body)


def test_a_journal_that_cannot_be_read_leaves_every_agent_looked_at(database_url: str) -> None:
    async def body(store: Store) -> None:
        earlier = EarlierSends()
        await store.close()
        await look_at_earlier_sends(store, earlier)
        assert earlier.ended is False
        await store.open()

    run(database_url, body)


def test_after_a_clean_stop_only_a_key_cut_short_here_is_unsure() -> None:
    locks = AgentLocks(EarlierSends(ended=True))
    assert locks.unsure(["agent-a", "conv-1"]) == []
    locks.unsettle("agent-a")
    assert locks.unsure(["agent-a", "conv-1"]) == ["agent-a"]
    locks.quiet("agent-a")
    assert locks.unsure(["agent-a"]) == []


def test_without_that_knowledge_every_key_is_unsure_until_a_send_ends_under_it() -> None:
    locks = AgentLocks()
    assert locks.unsure(["agent-a", "conv-1"]) == ["agent-a", "conv-1"]
    locks.quiet("agent-a")
    assert locks.unsure(["agent-a", "conv-1"]) == ["conv-1"]


def test_forgetting_a_key_cut_short_makes_every_key_not_seen_quiet_unsure_again() -> None:
    locks = AgentLocks(EarlierSends(ended=True))
    locks.quiet("agent-a")
    for n in range(QUIET_KEPT + 1):
        locks.unsettle(f"cut-{n}")
    assert locks.unsure(["cut-0", "agent-a", "agent-b"]) == ["cut-0", "agent-b"]


@pytest.mark.parametrize(("ended", "looks"), [(True, 0), (False, 1)])
def test_a_first_send_looks_at_the_runs_only_when_an_earlier_send_may_be_going(ended: bool, looks: int) -> None:
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")

        async def main() -> None:
            client = LettaClient(letta.base_url, busy_wait=1.0)
            client.locks = AgentLocks(EarlierSends(ended=ended))
            try:
                await client.send_agent(alice, MESSAGE)
                await client.send_agent(alice, {**MESSAGE, "otid": "o-2"})
            finally:
                await client.aclose()

        asyncio.run(main())
        runs = [r for r in letta.requests if r.method == "GET" and r.path.startswith("/v1/runs")]
        assert len(letta.sends()) == 2
        assert len(runs) == looks, runs


def test_a_key_cut_short_keeps_how_to_wait_for_that_send_until_a_send_ends_under_it() -> None:
    async def ended() -> None:
        return None

    locks = AgentLocks(EarlierSends(ended=True))
    locks.unsettle("agent-a", ended)
    locks.unsettle("agent-a")  # the store's word that a dead process left a send there too: the wait is kept
    assert locks.unsure(["agent-a"]) == ["agent-a"] and locks.left_going("agent-a") is ended
    locks.quiet("agent-a")
    assert locks.left_going("agent-a") is None


def test_a_group_send_cut_short_is_waited_for_once_by_the_next_send_and_a_refused_one_not_at_all() -> None:
    """A 0.11.x group send lists no run: what the runner gave for it (`left`) is what the next send to one of
    its members waits on, once for all its keys; a send Letta refused ran nothing, and leaves nothing to wait for."""
    with FakeLetta(version="0.11.7") as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        group = letta.add_group([alice, bob])
        waits: list[str] = []

        async def ended() -> None:
            waits.append("waited")

        async def main() -> None:
            client = LettaClient(letta.base_url, busy_wait=1.0)
            client.locks = AgentLocks(EarlierSends(ended=True))
            try:
                letta.set_delay(alice, 1.0)
                cut = asyncio.create_task(client.send_group(group, [alice, bob], MESSAGE, ended))
                await asyncio.sleep(0.3)
                cut.cancel()
                await asyncio.gather(cut, return_exceptions=True)
                assert client.locks.unsure([alice, bob]) == [alice, bob] and waits == []
                letta.set_delay(alice, 0.0)
                await client.send_group(group, [alice, bob], {**MESSAGE, "otid": "o-2"}, ended)
                assert waits == ["waited"] and client.locks.unsure([alice, bob]) == []
                with pytest.raises(LettaError):
                    await client.send_group("group-00000000-0000-4000-8000-000000000000", [alice], MESSAGE, ended)
                assert client.locks.left_going(alice) is None
            finally:
                await client.aclose()

        asyncio.run(main())


def test_the_group_steps_nobody_saw_end_are_read_with_their_turn(database_url: str) -> None:
    async def body(store: Store) -> None:
        going, answered, failed, other = [await accepted(store, n) for n in (1, 2, 3, 4)]
        for turn in (going, answered, failed):
            await store.step_sending(turn, "group")
        await store.step_answered(answered, "group", REPLY, None, None)
        await store.step_answered(failed, "group", [], FAILURE, None)
        await store.step_sending(other, "agent-a")
        left = await store.steps_left_going("group", since())
        assert [(s.channel_id, s.otid) for s in left] == [("C1", "otid-1"), ("C1", "otid-3")]
        assert all(datetime.now(UTC) - s.since < timedelta(minutes=1) for s in left)
        await aged_steps(store, 11)
        assert await store.steps_left_going("group", since()) == []

    run(database_url, body)


def test_a_workspace_server_s_client_knows_the_group_sends_left_going_before_it_is_first_used(
    database_url: str,
) -> None:
    """OAuth mode: each Letta server's client is made on first use; before anyone has it, the journal's group
    sends left going there are watched on its locks (clients.watch_group_sends_left), as the start does for the
    environment's."""
    alice, carol = AgentRef("agent-a", "alice"), AgentRef("agent-c", "carol")

    async def body(store: Store) -> None:
        target = Target("group", (alice,), "group-1", "round_robin", "crew")
        await store.put_binding(Binding("T1", "C1", target, bound_by="test"))
        await store.step_sending(await accepted(store, 1), "group")
        made: list[LettaClient] = []

        async def make(settings: Settings) -> LettaClient:
            made.append(LettaClient(settings.letta_base_url))
            return made[-1]

        servers = LettaServers(store, make)
        found = await servers.get(Settings(letta_base_url="http://127.0.0.1:9"))
        try:
            assert found.client is made[0]
            assert found.client.locks.left_going("agent-a") is not None
            assert found.client.locks.left_going(carol.id) is None
        finally:
            await found.client.aclose()

    run(database_url, body)
