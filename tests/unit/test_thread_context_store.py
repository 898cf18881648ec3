"""Which earlier turns of a thread count as having given the agents its context, on both backends."""

from __future__ import annotations

from bridge.domain import AgentFailure, AgentRef, AgentReply, Binding, Target, Turn
from bridge.pruner import Pruner
from bridge.store import Store
from bridge.store.slack_changes import move_channel
from tests.unit.test_retention import NOW, age
from tests.unit.test_store import run


def test_only_an_earlier_turn_an_agent_answered_counts(database_url: str) -> None:
    """An unbound turn (no step), a refused one (its step failed with nothing said) and one still in flight
    (`sending`) never brought the thread's earlier messages to an agent; one answered turn did."""

    async def body(store: Store) -> None:
        ids = []
        for n in range(5):
            turn = Turn("T1", "C1", f"1.00000{n + 1}", "1.000000", "U1", f"m{n}", f"Ev{n}")
            made = await store.accept_turn(turn, f"o{n}")
            assert made is not None
            ids.append(made)
        unbound, refused, sending, answered, now = ids
        await store.step_sending(refused, "agent-a")
        await store.step_answered(refused, "agent-a", [], AgentFailure("alice", "unreachable", "network"), None)
        await store.step_sending(sending, "agent-a")
        assert await store.earlier_turns_in_thread("T1", "C1", "1.000000", now) == 0
        await store.step_sending(answered, "agent-a")
        await store.step_answered(answered, "agent-a", [AgentReply("alice", "hi", "agent-a")], None, None)
        assert await store.earlier_turns_in_thread("T1", "C1", "1.000000", now) == 1
        assert await store.earlier_turns_in_thread("T1", "C1", "1.000000", answered) == 0
        assert unbound

    run(database_url, body)


def test_a_thread_whose_answered_turns_retention_deleted_still_counts_as_having_had_its_context(
    database_url: str,
) -> None:
    """Retention deletes a thread's old turns; a new mention there must not bring its earlier messages to the
    agents again (they had them, and the thread's conversation still holds them). A thread whose deleted turns
    never reached an agent gave them nothing: it still gets its context. A channel whose id changes keeps this."""

    async def body(store: Store) -> None:
        answered = await accepted(store, Turn("T1", "G1", "1.000001", "1.000000", "U1", "first", "Ev1"))
        await store.step_sending(answered, "agent-a")
        await store.step_answered(answered, "agent-a", [AgentReply("alice", "hi", "agent-a")], None, None)
        unbound = await accepted(store, Turn("T1", "G1", "2.000001", "2.000000", "U1", "nobody", "Ev2"))
        for turn_id in (answered, unbound):
            await store.finish_turn(turn_id, "done")
            await age(store, turn_id, 100)
        assert (await Pruner(store, 90, NOW).run_once()).turns == 2

        later = await accepted(store, Turn("T1", "G1", "1.000009", "1.000000", "U1", "again", "Ev3"))
        assert await store.earlier_turns_in_thread("T1", "G1", "1.000000", later) >= 1
        other = await accepted(store, Turn("T1", "G1", "2.000009", "2.000000", "U1", "again", "Ev4"))
        assert await store.earlier_turns_in_thread("T1", "G1", "2.000000", other) == 0
        await store.put_binding(Binding("T1", "G1", Target(kind="agents", agents=(AgentRef("agent-a", "alice"),))))
        assert await move_channel(store, "T1", "G1", "C1")
        assert await store.earlier_turns_in_thread("T1", "C1", "1.000000", later) >= 1

    run(database_url, body)


async def accepted(store: Store, turn: Turn) -> int:
    made = await store.accept_turn(turn, f"o-{turn.event_id}")
    assert made is not None
    return made
