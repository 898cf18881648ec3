"""The bridge-run transcript under FINISHED_TURNS_DAYS, on both backends: an old row goes once every agent that could
be told it has seen it; a row an agent has not seen stays (it is what that agent is told next), and so does each
scope's last row (the next one is numbered after it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from bridge.domain import AgentRef, AgentReply, Binding, Target
from bridge.pruner import Pruner
from bridge.store import Store
from bridge.store.retention import Retention
from bridge.store.sql import Sql
from bridge.store.transcript_retention import TranscriptPruned
from tests.unit.test_retention import NOW, accepted
from tests.unit.test_store import ALICE, BOB, CAROL, group, run

THREAD = "C1/7.000001"  # conversations.thread_scope("C1", "7.000001")
NAMES = {"agent-a": "alice", "agent-b": "bob", "agent-c": "carol"}


class Crew:
    """Agents answering in one turn's steps, each answer moving the scope's transcript and the agent's cursor."""

    def __init__(self, store: Store, turn_id: int) -> None:
        self._store, self._turn, self._steps = store, turn_id, count()

    async def says(self, scope: str, agent: str, saw_upto: int, text: str | None = None) -> None:
        said = [AgentReply(NAMES[agent], text, agent)] if text is not None else []
        step = f"{agent}#{next(self._steps)}"
        await self._store.step_answered(self._turn, step, said, None, ("T1", scope, agent, saw_upto))


async def age(store: Store, scope: str, days: float) -> None:
    then = datetime.now(UTC) - timedelta(days=days)
    when: object = then.isoformat() if hasattr(store, "_transact") else then
    await Sql(store).execute("UPDATE transcript SET at=$1 WHERE team_id='T1' AND channel_id=$2", when, scope)


async def seqs(store: Store, scope: str) -> list[int]:
    rows = await Sql(store).fetch("SELECT seq FROM transcript WHERE team_id='T1' AND channel_id=$1 ORDER BY seq", scope)
    return [int(r["seq"]) for r in rows]


async def told(store: Store, scope: str, agent: str) -> list[str]:
    unseen, _ = await store.unseen("T1", scope, agent, from_start="/" in scope)
    return [r.text for r in unseen]


def test_an_old_row_goes_once_every_other_agent_has_seen_it_and_the_last_stays(database_url: str) -> None:
    async def body(store: Store) -> None:
        crew = Crew(store, await accepted(store, 1))
        await crew.says("C1", "agent-a", 0, "a1")  # seq 1
        await crew.says("C1", "agent-b", 1, "b2")  # seq 2
        await crew.says("C1", "agent-a", 2, "a3")  # seq 3
        await crew.says("C1", "agent-b", 3, "b4")  # seq 4
        await crew.says("C1", "agent-c", 1)  # carol has seen up to seq 1 only
        await crew.says("C2", "agent-a", 0, "recent")
        await crew.says("C2", "agent-b", 1, "recent too")
        await age(store, "C1", 100)

        first = await Pruner(store, 90, NOW).run_once()

        assert first.transcript == 1
        assert await seqs(store, "C1") == [2, 3, 4]  # what carol has not seen stays
        assert await told(store, "C1", "agent-c") == ["b2", "a3", "b4"]
        assert await seqs(store, "C2") == [1, 2]  # within the retention
        await crew.says("C1", "agent-c", 4, "c5")
        await crew.says("C1", "agent-a", 5)  # alice, too, has seen everything
        await age(store, "C1", 100)
        assert (await Pruner(store, 90, NOW).run_once()).transcript == 3
        assert await seqs(store, "C1") == [5]  # the last row stays: numbers go on after it
        await crew.says("C1", "agent-a", 5, "a6")
        assert await seqs(store, "C1") == [5, 6]
        assert await told(store, "C1", "agent-b") == ["c5", "a6"]

    run(database_url, body)


def test_a_thread_row_stays_while_an_agent_of_the_channel_was_never_asked_there(database_url: str) -> None:
    """An agent without a cursor in a thread's scope is told the thread's transcript from its start."""

    async def body(store: Store) -> None:
        crew = Crew(store, await accepted(store, 1))
        for agent in NAMES:
            await crew.says("C1", agent, 0)  # each one bound in the channel
        await crew.says(THREAD, "agent-a", 0, "a1")
        await crew.says(THREAD, "agent-b", 1, "b2")
        await crew.says(THREAD, "agent-a", 2, "a3")
        await age(store, THREAD, 100)

        assert (await Pruner(store, 90, NOW).run_once()).transcript == 0
        assert await told(store, THREAD, "agent-c") == ["a1", "b2", "a3"]
        await crew.says(THREAD, "agent-c", 3, "c4")
        await age(store, THREAD, 100)
        assert (await Pruner(store, 90, NOW).run_once()).transcript == 2
        assert await seqs(store, THREAD) == [3, 4]  # bob has not seen seq 3 yet
        assert await told(store, THREAD, "agent-b") == ["a3", "c4"]

    run(database_url, body)


def test_the_walk_goes_window_by_window_by_age(database_url: str) -> None:
    async def body(store: Store) -> None:
        crew = Crew(store, await accepted(store, 1))
        for n, scope in enumerate(("C1", "C2", "C3")):
            await crew.says(scope, "agent-a", 0, f"a{n}")
            await crew.says(scope, "agent-b", 1, f"b{n}")
            await crew.says(scope, "agent-a", 2)
            await age(store, scope, 100 - n)
        retention = Retention(store)
        first = await retention.prune_transcript(90, None, limit=2)
        assert first.rows == 1 and first.after is not None and first.after[1:] == ("T1", "C1", 2)
        second = await retention.prune_transcript(90, first.after, limit=2)
        assert second.rows == 1 and second.after is not None and second.after[1:] == ("T1", "C2", 2)
        third = await retention.prune_transcript(90, second.after, limit=2)
        assert third.rows == 1 and third.after is not None
        assert await retention.prune_transcript(90, third.after, limit=2) == TranscriptPruned(0, None)
        assert [await seqs(store, scope) for scope in ("C1", "C2", "C3")] == [[2], [2], [2]]

    run(database_url, body)


async def bind(store: Store, target: Target) -> None:
    await store.put_binding(Binding("T1", "C1", target, bound_by="test"))


async def carol_left_behind(store: Store) -> Crew:
    """Alice, Bob and Carol bound in C1; Carol saw up to seq 1; Alice and Bob went on to seq 4."""
    await bind(store, group(ALICE, BOB, CAROL))
    crew = Crew(store, await accepted(store, 1))
    await crew.says("C1", "agent-a", 0, "a1")  # seq 1
    await crew.says("C1", "agent-c", 1)  # carol, last asked here
    await crew.says("C1", "agent-b", 1, "b2")  # seq 2
    await crew.says("C1", "agent-a", 2, "a3")  # seq 3
    await crew.says("C1", "agent-b", 3, "b4")  # seq 4
    return crew


def test_an_agent_taken_out_of_the_channel_no_longer_holds_its_rows(database_url: str) -> None:
    """Without it, one agent taken out of a channel's group kept every later row of that channel for ever."""

    async def body(store: Store) -> None:
        await carol_left_behind(store)
        await age(store, "C1", 100)
        assert (await Pruner(store, 90, NOW).run_once()).transcript == 1
        assert await seqs(store, "C1") == [2, 3, 4]  # carol, still bound, has not seen them

        await bind(store, group(ALICE, BOB))  # carol taken out
        assert (await Pruner(store, 90, NOW).run_once()).transcript == 2
        assert await seqs(store, "C1") == [4]  # alice has not seen b4 (and it is the last)
        await bind(store, group(ALICE, BOB, CAROL))  # put back: told what is still kept
        assert await told(store, "C1", "agent-c") == ["b4"]

    run(database_url, body)


def test_a_thread_row_is_not_held_for_an_agent_taken_out_of_the_channel(database_url: str) -> None:
    async def body(store: Store) -> None:
        crew = await carol_left_behind(store)
        await crew.says(THREAD, "agent-a", 0, "a1")
        await crew.says(THREAD, "agent-b", 1, "b2")
        await crew.says(THREAD, "agent-a", 2)
        await age(store, THREAD, 100)
        assert (await Pruner(store, 90, NOW).run_once()).transcript == 0  # carol would be told the thread
        await bind(store, group(ALICE, BOB))
        await age(store, THREAD, 100)
        assert (await Pruner(store, 90, NOW).run_once()).transcript == 1
        assert await seqs(store, THREAD) == [2]

    run(database_url, body)


def test_every_cursor_counts_where_the_binding_does_not_name_who_is_asked(database_url: str) -> None:
    """A Letta group whose manager is looked up at each turn, and an unbound channel: any agent may be asked."""
    supervised = Target("group", (ALICE, BOB), "group-1", "supervisor", "crew")
    mine = Target("agents", (ALICE, BOB), None, "supervisor", manager=AgentRef("agent-m", "mo"))

    async def body(store: Store) -> None:
        await carol_left_behind(store)
        await age(store, "C1", 100)
        assert (await Pruner(store, 90, NOW).run_once()).transcript == 1
        for target in (supervised, None, mine):
            if target is None:
                await store.delete_binding("T1", "C1", "test")
            else:
                await bind(store, target)
            gone = (await Pruner(store, 90, NOW).run_once()).transcript
            assert (gone, await seqs(store, "C1")) == ((2, [4]) if target is mine else (0, [2, 3, 4]))

    run(database_url, body)
