"""The binding a turn started with is kept on it (store/turn_binding.py): a resumed turn runs with it."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.domain import AgentRef, Binding, Target, Turn
from bridge.store import Store
from bridge.store.turn_binding import binding_from_json, binding_json
from tests.unit.test_store import ALICE, BOB, CAROL, run

FIRST = Binding("T1", "C1", Target("agents", (ALICE, BOB)), runner="bridge", bound_by="U1")
SECOND = Binding("T1", "C1", Target("agents", (CAROL,)), bound_by="U2")


def test_every_kind_of_binding_comes_back_as_it_was_kept() -> None:
    at = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
    bindings = [
        FIRST,
        Binding("T1", "C1", Target("group", (ALICE, BOB), group_id="group-1", manager_type="round_robin",
                                   description="the crew"), runner="server", bound_at=at),
        Binding("T1", "C1", Target("agents", (ALICE, BOB), manager_type="supervisor", manager=AgentRef("m", "boss"),
                                   max_turns=4, termination_token="DONE NOW")),
        Binding("T1", "C1", Target("agents", (ALICE, BOB), manager_type="broadcast")),
    ]
    for binding in bindings:
        assert binding_from_json(binding_json(binding)) == binding
    assert binding_from_json(binding_json(None)) is None and binding_from_json(None) is None


def test_a_turn_keeps_the_binding_it_was_first_taken_with(database_url: str) -> None:
    async def body(store: Store) -> None:
        turn_id = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", "Ev1"), "otid-1")
        assert turn_id is not None
        first = await store.take_turn(turn_id, FIRST)
        assert first is not None and (first.words, first.binding) == ("hi", FIRST)
        again = await store.take_turn(turn_id, SECOND)  # resumed after the channel was bound anew
        assert again is not None and again.binding == FIRST
        unbound = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "yo", "Ev2"), "otid-2")
        assert unbound is not None
        taken = await store.take_turn(unbound)
        assert taken is not None and taken.binding is None
        taken = await store.take_turn(unbound, SECOND)  # it started unbound: it ends so, whatever came since
        assert taken is not None and taken.binding is None

    run(database_url, body)


def test_a_thread_whose_only_mention_ended_before_it_ran_is_not_one_the_bot_answers_in(database_url: str) -> None:
    """Follow-ups there (people talking among themselves) are not the agents' (revK: a mention made in a
    colleague's thread and deleted, or stopped, before its turn came)."""
    async def body(store: Store) -> None:
        async def mention(n: int) -> int:
            turn_id = await store.accept_turn(Turn("T1", "C1", f"2.00000{n}", "2.000000", "U1", "hi", f"E{n}"), f"o{n}")
            assert turn_id is not None
            return turn_id

        assert not await store.thread_answered("T1", "C1", "2.000000")
        await mention(1)
        assert await store.thread_answered("T1", "C1", "2.000000"), "a mention that waits: follow-ups join it"
        assert await store.stop_turns("T1", "C1", "2.000000", "U2")
        assert not await store.thread_answered("T1", "C1", "2.000000"), "stopped before it ran"
        running = await mention(2)
        assert await store.take_turn(running, FIRST)
        await store.stop_turns("T1", "C1", "2.000000", "U2")
        await store.finish_turn(running, "stopped")
        assert await store.thread_answered("T1", "C1", "2.000000"), "stopped while it ran: the bot was there"
        assert await store.last_turn_in_thread("T1", "C1", "2.000000") == running
        assert await store.last_turn_in_thread("T1", "C1", "9.000000") == 0

    run(database_url, body)


def test_a_thread_whose_only_mention_ended_unbound_is_not_one_the_bot_answers_in(database_url: str) -> None:
    """Its notice asked for a new mention: chatter there, once the channel is connected, is not the agents'."""
    async def body(store: Store) -> None:
        turn_id = await store.accept_turn(Turn("T1", "C1", "3.000001", "3.000000", "U1", "hi", "E1"), "o1")
        assert turn_id is not None
        taken = await store.take_turn(turn_id, None)  # as TurnWorker._take does in a channel not connected
        assert taken is not None and taken.binding is None
        await store.finish_turn(turn_id, "unbound")
        assert not await store.thread_answered("T1", "C1", "3.000000")

    run(database_url, body)
