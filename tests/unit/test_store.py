from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.domain import AgentRef, AgentReply, Binding, Target, Turn
from bridge.store import Store, StoreError, open_store
from bridge.store.conversations import thread_scope
from bridge.store.schema import SQLITE_MIGRATIONS
from bridge.store.slack_changes import move_channel
from bridge.store.sqlite import SqliteStore

LATEST = len(SQLITE_MIGRATIONS)  # the schema version a fresh database reaches

ALICE, BOB, CAROL = AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob"), AgentRef("agent-c", "carol")


def run(url: str, body: Callable[[Store], Awaitable[None]]) -> None:
    async def main() -> None:
        store = open_store(url)
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(main())


def group(*agents: AgentRef) -> Target:
    return Target(kind="group", agents=agents, group_id="group-1", manager_type="round_robin", description="crew")


def test_the_database_is_created_migrated_and_reopened_without_loss(database_url: str) -> None:
    async def first(store: Store) -> None:
        assert await store.schema_version() == LATEST
        await store.put_binding(Binding("T1", "C1", group(ALICE, BOB), bound_by="cli"))

    async def second(store: Store) -> None:
        assert await store.schema_version() == LATEST
        [binding] = await store.list_bindings()
        assert binding.target.agents == (ALICE, BOB) and binding.bound_by == "cli"

    run(database_url, first)
    run(database_url, second)


def test_a_bridge_defined_group_keeps_its_manager_and_limits(database_url: str) -> None:
    boss = AgentRef("agent-boss", "boss")
    dynamic = Target("agents", (ALICE, BOB), manager_type="dynamic", manager=boss, max_turns=3, termination_token="OK")

    async def body(store: Store) -> None:
        await store.put_binding(Binding("T1", "C1", dynamic))
        await store.put_binding(Binding("T1", "C2", group(ALICE)))
        kept = await store.get_binding("T1", "C1")
        assert kept is not None and kept.target == dynamic
        plain = await store.get_binding("T1", "C2")
        assert plain is not None and plain.target.manager is None and plain.target.max_turns is None

    run(database_url, body)


def test_the_history_keeps_each_bindings_pattern_manager_and_limits(database_url: str) -> None:
    """Two bindings of the same agents, told apart by their pattern and manager (/letta status's last changes)."""
    boss, chief = AgentRef("agent-boss", "boss"), AgentRef("agent-chief", "chief")
    supervisor = Target("agents", (ALICE, BOB), manager_type="supervisor", manager=boss)
    dynamic = Target("agents", (ALICE, BOB), manager_type="dynamic", manager=chief, max_turns=3)

    async def body(store: Store) -> None:
        await store.put_binding(Binding("T1", "C1", supervisor))
        await store.put_binding(Binding("T1", "C1", dynamic))
        await store.set_runner("T1", "C1", "bridge", "cli")
        await store.put_binding(Binding("T1", "C1", Target("agents", (ALICE, BOB))))
        assert [(h.target, h.pattern) for h in await store.history("T1", "C1")] == [
            ("agent-a agent-b", ""),
            ("agent-a agent-b", "dynamic, manager chief (agent-chief), max turns 3"),
            ("agent-a agent-b", "dynamic, manager chief (agent-chief), max turns 3"),
            ("agent-a agent-b", "supervisor, manager boss (agent-boss)"),
        ]

    run(database_url, body)


def test_bindings_are_per_workspace_and_rebinding_returns_what_it_replaced(database_url: str) -> None:
    async def body(store: Store) -> None:
        assert await store.put_binding(Binding("T1", "C1", group(ALICE))) is None
        await store.put_binding(Binding("T2", "C1", group(BOB)))
        replaced = await store.put_binding(Binding("T1", "C1", Target(kind="agents", agents=(CAROL,))))
        assert replaced is not None and replaced.target.agents == (ALICE,)
        other = await store.get_binding("T2", "C1")
        assert other is not None and other.target.agents == (BOB,)
        assert await store.delete_binding("T1", "C1", "cli") is not None
        assert await store.get_binding("T1", "C1") is None
        assert [h.action for h in await store.history("T1", "C1")] == ["disconnect", "connect", "connect"]

    run(database_url, body)


def test_a_binding_touched_moves_only_its_bound_at(database_url: str) -> None:
    """A channel connected again with nothing changed: its bound_at is the connect's (a group's record read before
    is read again), with no history entry and nothing else changed."""
    early, later = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, 12, 30, tzinfo=UTC)

    async def body(store: Store) -> None:
        bound = Binding("T1", "C1", group(ALICE, BOB), runner="bridge", bound_by="U1", bound_at=early)
        await store.put_binding(bound)
        assert await store.touch_binding(dataclasses.replace(bound, bound_at=later))
        assert not await store.touch_binding(dataclasses.replace(bound, channel_id="C9"))  # no binding: nothing made
        assert not await store.touch_binding(dataclasses.replace(bound, bound_by="U2", bound_at=early))  # not that one
        kept = await store.get_binding("T1", "C1")
        assert kept is not None and kept.bound_at == later
        assert (kept.target, kept.runner, kept.bound_by) == (group(ALICE, BOB), "bridge", "U1")
        assert await store.get_binding("T1", "C9") is None
        assert [h.action for h in await store.history("T1", "C1")] == ["connect"]

    run(database_url, body)


def test_a_turn_is_accepted_once_by_event_id_and_by_message(database_url: str) -> None:
    async def body(store: Store) -> None:
        turn = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", event_id="Ev1")
        assert await store.accept_turn(turn, "otid-1") is not None
        assert await store.accept_turn(turn, "otid-2") is None
        same_message = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", event_id="Ev2")
        assert await store.accept_turn(same_message, "otid-3") is None

    run(database_url, body)


def test_transcript_shows_each_agent_only_the_others_replies_it_has_not_seen(database_url: str) -> None:
    async def body(store: Store) -> None:
        await store.put_binding(Binding("T1", "C1", group(ALICE, BOB, CAROL)))

        async def answer(turn_id: int, agent: AgentRef, text: str) -> list[str]:
            unseen, upto = await store.unseen("T1", "C1", agent.id)
            reply = AgentReply(agent.name, text, agent.id)
            await store.step_answered(turn_id, agent.id, [reply], None, ("T1", "C1", agent.id, upto))
            return [r.text for r in unseen]

        for agent in (ALICE, BOB, CAROL):
            await answer(1, agent, f"{agent.name} 1")
        # Second turn: alice has not seen the first replies of bob and carol; bob not those of carol and alice.
        assert await answer(2, ALICE, "alice 2") == ["bob 1", "carol 1"]
        step = await store.get_step(2, ALICE.id)
        assert step is not None and step.state == "answered" and step.replies[0].text == "alice 2"
        unseen, _ = await store.unseen("T1", "C1", BOB.id)
        assert [r.text for r in unseen] == ["carol 1", "alice 2"]
        # An agent added later starts from now.
        dora = AgentRef("agent-d", "dora")
        await store.put_binding(Binding("T1", "C1", group(ALICE, BOB, CAROL, dora)))
        assert (await store.unseen("T1", "C1", dora.id))[0] == []

    run(database_url, body)


def test_a_threads_transcript_starts_empty_and_stays_out_of_the_channels(database_url: str) -> None:
    async def body(store: Store) -> None:
        await store.put_binding(Binding("T1", "C1", group(ALICE, BOB)))
        a, b = thread_scope("C1", "1.000001"), thread_scope("C1", "2.000002")

        async def answer(turn_id: int, scope: str, agent: AgentRef, text: str) -> list[str]:
            unseen, upto = await store.unseen("T1", scope, agent.id, from_start=True)
            await store.step_answered(
                turn_id, agent.id, [AgentReply(agent.name, text, agent.id)], None, ("T1", scope, agent.id, upto)
            )
            return [r.text for r in unseen]

        assert await answer(1, a, ALICE, "alice in a") == []
        assert await answer(2, b, ALICE, "alice in b") == []
        assert await answer(1, a, BOB, "bob in a") == ["alice in a"]  # no cursor yet: the whole thread so far
        assert await answer(2, b, BOB, "bob in b") == ["alice in b"]
        assert await answer(3, a, ALICE, "alice again") == ["bob in a"]
        assert (await store.unseen("T1", "C1", ALICE.id))[0] == []  # the channel's own transcript is untouched

    run(database_url, body)


def test_a_threads_conversation_per_agent_is_kept_and_the_first_one_stored_wins(database_url: str) -> None:
    async def body(store: Store) -> None:
        assert await store.conversation(("T1", "C1", "1.000001"), ALICE.id) is None
        assert await store.put_conversation(("T1", "C1", "1.000001"), ALICE.id, "conv-a") == "conv-a"
        assert await store.put_conversation(("T1", "C1", "1.000001"), ALICE.id, "conv-late") == "conv-a"
        assert await store.put_conversation(("T1", "C1", "1.000001"), BOB.id, "conv-b") == "conv-b"
        assert await store.put_conversation(("T1", "C1", "2.000002"), ALICE.id, "conv-c") == "conv-c"
        assert await store.conversation(("T1", "C1", "1.000001"), ALICE.id) == "conv-a"
        assert await store.conversation(("T2", "C1", "1.000001"), ALICE.id) is None
        # A conversation gone on Letta gives way to a new one, unless another already took its place.
        assert (
            await store.put_conversation(("T1", "C1", "1.000001"), ALICE.id, "conv-a2", replacing="conv-a") == "conv-a2"
        )
        assert (
            await store.put_conversation(("T1", "C1", "1.000001"), ALICE.id, "conv-a3", replacing="conv-a") == "conv-a2"
        )
        assert await store.conversation(("T1", "C1", "1.000001"), ALICE.id) == "conv-a2"
        # A conversation the thread leaves is forgotten, unless another already took its place.
        await store.forget_conversation(("T1", "C1", "1.000001"), ALICE.id, "conv-a")
        assert await store.conversation(("T1", "C1", "1.000001"), ALICE.id) == "conv-a2"
        await store.forget_conversation(("T1", "C1", "1.000001"), ALICE.id, "conv-a2")
        assert await store.conversation(("T1", "C1", "1.000001"), ALICE.id) is None
        assert await store.conversation(("T1", "C1", "1.000001"), BOB.id) == "conv-b"
        assert await store.put_conversation(("T1", "C1", "1.000001"), ALICE.id, "conv-a4") == "conv-a4"

    run(database_url, body)


def test_a_version_2_sqlite_database_gains_the_conversations_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"

    async def downgrade(store: Store) -> None:
        assert isinstance(store, SqliteStore)
        await store.db.execute("DROP TABLE conversations")
        later = ("seen_signatures", "slack_installations", "oauth_states", "slack_workspaces", "bridge_secrets")
        later += ("feedback", "approvals", "turn_attachments")
        for table in later:
            await store.db.execute(f"DROP TABLE {table}")  # v4 to v10
        for column in ("manager_id", "manager_name", "max_turns", "termination_token"):
            await store.db.execute(f"ALTER TABLE bindings DROP COLUMN {column}")  # v9
        await store.db.execute("ALTER TABLE turns DROP COLUMN files")  # v10
        await store.db.execute("DROP INDEX turn_steps_unsettled")  # v14
        await store.db.execute("DROP INDEX transcript_age")  # v15
        await store.db.execute("ALTER TABLE transcript DROP COLUMN at")
        await store.db.execute("DROP TABLE pruned_threads")  # v16
        await store.db.execute("ALTER TABLE turns DROP COLUMN binding")  # v17
        await store.db.execute("ALTER TABLE binding_history DROP COLUMN pattern")  # v18
        await store.db.execute("ALTER TABLE turns DROP COLUMN edited_ts")  # v20
        await store.db.execute("ALTER TABLE turn_steps DROP COLUMN run_id")  # v21
        await store.db.execute("PRAGMA user_version=2")

    async def upgraded(store: Store) -> None:
        assert await store.schema_version() == LATEST
        assert await store.put_conversation(("T1", "C1", "1.000001"), ALICE.id, "conv-a") == "conv-a"

    run(url, downgrade)
    run(url, upgraded)


def test_notices_are_due_once(database_url: str) -> None:
    async def body(store: Store) -> None:
        assert await store.notice_once("T1", "C1", "route_missing") is True
        assert await store.notice_once("T1", "C1", "route_missing") is False

    run(database_url, body)


def test_unknown_schemes_and_missing_folders_are_plain_errors(tmp_path: Path) -> None:
    try:
        open_store("mysql://x")
    except StoreError as exc:
        assert "mysql" in str(exc)
    else:
        raise AssertionError("mysql accepted")

    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
        try:
            await store.open()
        except StoreError as exc:
            assert "does not exist" in str(exc)
        else:
            raise AssertionError("opened a database in a missing folder")

    asyncio.run(main())


def test_outbox_owes_each_message_once_and_remembers_posted_parts(database_url: str) -> None:
    async def body(store: Store) -> None:
        await store.outbox_add(7, "reply:a:0", "alice", "hello")
        await store.outbox_add(7, "reply:a:0", "alice", "hello again")
        await store.outbox_add(7, "fail:b:0", None, "bob failed")
        first, second = await store.outbox_pending(7)
        assert (first.text, first.agent_name, second.agent_name) == ("hello", "alice", None)
        await store.outbox_posted(first.id, 0, "1.1", last=False)
        assert (await store.outbox_pending(7))[0].posted == frozenset({0})
        await store.outbox_posted(first.id, 1, "1.2", last=True)
        assert [i.source for i in await store.outbox_pending(7)] == ["fail:b:0"]
        assert await store.posts_of(7) == [("alice", "1.1"), ("alice", "1.2")]

    run(database_url, body)


def test_unfinished_turns_come_back_oldest_first(database_url: str) -> None:
    async def body(store: Store) -> None:
        a = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        b = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        c = await store.accept_turn(Turn("T1", "C2", "1.000003", "1.000003", "U1", "c", "Ev3"), "o3")
        assert a and b and c
        await store.take_turn(b)
        await store.finish_turn(c, "done")
        assert [(p.turn_id, p.otid, p.turn.text) for p in await store.unfinished_turns()] == [
            (a, "o1", "a"),
            (b, "o2", "b"),
        ]

    run(database_url, body)


def test_a_stopped_turn_is_not_marked_running_and_says_so(database_url: str) -> None:
    async def body(store: Store) -> None:
        a = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        b = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        assert a and b
        assert await store.stop_turns("T1", "C1", "1.000002", "U9") == [(b, True)]  # it waited: ended by the stop
        assert await store.take_turn(a) is not None
        assert await store.take_turn(b) is None
        assert await store.turn_stopped_by(b) == "U9"

    run(database_url, body)


def test_a_turn_whose_channel_moved_is_not_taken_under_its_old_id(database_url: str) -> None:
    """Read under G1, then its channel's id changed (its row now C1's): the old id's worker does not take it."""

    async def body(store: Store) -> None:
        a = await store.accept_turn(Turn("T1", "G1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        assert a is not None
        await store.put_binding(Binding("T1", "G1", group(ALICE)))
        assert await move_channel(store, "T1", "G1", "C1")
        assert await store.take_turn(a, None, "G1") is None
        assert await store.take_turn(a, None, "C1") is not None

    run(database_url, body)


def test_unfinished_turns_of_one_binding_and_text_postgres_cannot_hold(database_url: str) -> None:
    async def body(store: Store) -> None:
        a = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "nul \x00 inside", "Ev1"), "o1")
        b = await store.accept_turn(Turn("T1", "C2", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        assert a and b
        [only] = await store.unfinished_turns("T1", "C1")
        assert only.turn_id == a and only.turn.text.startswith("nul ")
        assert [p.turn_id for p in await store.unfinished_turns()] == [a, b]
        await store.ping()

    run(database_url, body)


def test_the_queue_is_read_a_turn_at_a_time_and_counted(database_url: str) -> None:
    """next_turn, waiting_threads, turns_ahead and count_unfinished: what the relay asks instead of the whole
    queue. Two threads in C1 (root R1 with a follow-up, root R2), one turn in C2, one in another workspace."""

    async def body(store: Store) -> None:
        async def accept(team: str, channel: str, ts: str, thread: str) -> int:
            turn_id = await store.accept_turn(Turn(team, channel, ts, thread, "U1", ts, f"Ev{team}{channel}{ts}"), ts)
            assert turn_id is not None
            return turn_id

        r1 = await accept("T1", "C1", "1.000001", "1.000001")
        r2 = await accept("T1", "C1", "1.000002", "1.000002")
        r1_follow = await accept("T1", "C1", "1.000003", "1.000001")
        other_channel = await accept("T1", "C2", "1.000004", "1.000004")
        await accept("T2", "C1", "1.000005", "1.000005")

        async def next_id(thread: str | None = None, skip: tuple[int, ...] = ()) -> int | None:
            found = await store.next_turn("T1", "C1", thread, skip=skip)
            return None if found is None else found.turn_id

        assert await next_id() == r1
        first = await store.next_turn("T1", "C1")
        assert first is not None and first.otid == "1.000001" and first.turn.thread_ts == "1.000001"
        assert await next_id("1.000001") == r1 and await next_id("1.000002") == r2
        assert await next_id(skip=(r1,)) == r2, "a turn that crashed here is stepped over"
        assert await next_id("1.000001", skip=(r1,)) == r1_follow
        assert await store.waiting_threads("T1", "C1") == ["1.000001", "1.000002"]
        assert await store.count_unfinished("T1", "C1") == 3 and await store.count_unfinished() == 5
        # Ahead of the thread's newest waiting turn: in the binding (channel order) or in the thread alone.
        assert await store.turns_ahead("T1", "C1", "1.000001", in_thread=False) == 2
        assert await store.turns_ahead("T1", "C1", "1.000001", in_thread=True) == 1
        assert await store.turns_ahead("T1", "C1", "1.000002", in_thread=False) == 1
        assert await store.turns_ahead("T1", "C1", "1.000002", in_thread=True) == 0
        assert await store.turns_ahead("T1", "C1", "9.999999", in_thread=False) == 0, "a thread with nothing queued"

        await store.take_turn(r1)  # running is still unfinished: it is ahead of the others
        assert await next_id() == r1 and await store.turns_ahead("T1", "C1", "1.000002", in_thread=False) == 1
        await store.finish_turn(r1, "done")
        assert await next_id() == r2 and await next_id("1.000001") == r1_follow
        assert await store.turns_ahead("T1", "C1", "1.000001", in_thread=False) == 1
        await store.finish_turn(r2, "done")
        await store.finish_turn(r1_follow, "failed")
        assert await next_id() is None and await store.waiting_threads("T1", "C1") == []
        assert await store.count_unfinished("T1", "C1") == 0
        assert await store.turns_ahead("T1", "C1", "1.000001", in_thread=False) == 0
        found = await store.next_turn("T1", "C2")
        assert found is not None and found.turn_id == other_channel

    run(database_url, body)


def test_a_binding_lease_has_one_owner_until_released_or_expired(database_url: str) -> None:
    async def body(store: Store) -> None:
        assert await store.claim_binding("T1", "C1", "web.1", 30)
        assert await store.claim_binding("T1", "C1", "web.1", 30), "the owner may claim again"
        assert not await store.claim_binding("T1", "C1", "web.2", 30)
        assert await store.claim_binding("T1", "C2", "web.2", 30), "another binding is free"
        assert await store.renew_binding("T1", "C1", "web.1", 30)
        assert not await store.renew_binding("T1", "C1", "web.2", 30)
        await store.release_binding("T1", "C1", "web.2")  # not web.2's: nothing happens
        assert not await store.claim_binding("T1", "C1", "web.2", 30)
        await store.release_binding("T1", "C1", "web.1")
        assert await store.claim_binding("T1", "C1", "web.2", 0.2)
        await asyncio.sleep(0.3)
        assert await store.claim_binding("T1", "C1", "web.1", 30), "an expired lease is taken over"
        assert not await store.renew_binding("T1", "C1", "web.2", 30), "the old owner learns it lost the lease"

    run(database_url, body)


def test_orphaned_bindings_are_those_with_unfinished_turns_and_no_live_lease(database_url: str) -> None:
    async def body(store: Store) -> None:
        for n, channel in enumerate(("C1", "C2", "C3", "C1"), start=1):
            turn_id = await store.accept_turn(Turn("T1", channel, f"1.00000{n}", "1", "U1", "x", f"Ev{n}"), "o")
            assert turn_id
            if channel == "C3":
                await store.finish_turn(turn_id, "done")
        assert await store.orphaned_bindings() == [("T1", "C1"), ("T1", "C2")]
        assert await store.claim_binding("T1", "C1", "web.1", 1.5)  # long enough for a loaded machine's next await
        assert await store.orphaned_bindings() == [("T1", "C2")]
        await asyncio.sleep(1.6)
        assert await store.orphaned_bindings() == [("T1", "C1"), ("T1", "C2")], "its process died: C1 is orphaned"

    run(database_url, body)


def test_a_signature_is_seen_once_until_its_window_ends_across_reopens(database_url: str) -> None:
    import time

    now = time.time()

    async def first(store: Store) -> None:
        assert await store.first_signature("v0=aa", now + 300)
        assert not await store.first_signature("v0=aa", now + 300)
        assert await store.first_signature("v0=old", now - 1)  # its window is over: a replay would be stale
        assert await store.first_signature("v0=old", now + 300)  # and expired rows give way
        await store.record_signatures()  # the request is answered

    async def second(store: Store) -> None:
        assert not await store.first_signature("v0=aa", now + 300), "a restart forgot a signature"

    run(database_url, first)
    run(database_url, second)


def test_a_signature_is_written_with_the_requests_turn_or_before_its_answer(database_url: str) -> None:
    import time

    now = time.time()

    async def first(store: Store) -> None:
        assert await store.first_signature("v0=mention", now + 300)
        assert await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        assert await store.first_signature("v0=command", now + 300)
        await store.record_signatures()
        assert await store.first_signature("v0=unanswered", now + 300)  # the process dies before answering

    async def second(store: Store) -> None:
        assert not await store.first_signature("v0=mention", now + 300), "written with the accepted turn"
        assert not await store.first_signature("v0=command", now + 300), "written before the answer"
        assert await store.first_signature("v0=unanswered", now + 300), "never answered: Slack sends it again"

    if database_url.startswith("postgres"):
        pytest.skip("Postgres writes each signature as it is checked, for every process sharing the database")
    run(database_url, first)
    run(database_url, second)


def test_a_request_whose_signature_another_write_carries_waits_for_that_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests checked at once: A's record_signatures takes both; B's must not return (and be answered 200)
    before that write is on disk, and must fail if it fails."""
    import time

    from bridge.store.signatures import SeenSignatures, SignatureWriteFailed

    slow_write = SeenSignatures.write
    fail = [False]

    def write(conn: Any, taken: list[tuple[str, float]]) -> None:
        time.sleep(0.3)  # in the writer's thread: the transaction is still open when B asks
        if fail[0]:
            raise sqlite3.OperationalError("disk I/O error")
        slow_write(conn, taken)

    monkeypatch.setattr(SeenSignatures, "write", staticmethod(write))
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    now = time.time()

    async def on_disk(store: Store) -> list[str]:
        assert isinstance(store, SqliteStore)
        rows = await store._all("SELECT signature FROM seen_signatures ORDER BY signature", ())
        return [r["signature"] for r in rows]

    async def body(store: Store) -> None:
        assert await store.first_signature("v0=a", now + 300) and await store.first_signature("v0=b", now + 300)
        first = asyncio.create_task(store.record_signatures())  # A's: takes a and b
        await asyncio.sleep(0.05)
        await store.record_signatures()  # B's: nothing left to take, but b is not on disk yet
        assert await on_disk(store) == ["v0=a", "v0=b"]
        await first
        fail[0] = True
        assert await store.first_signature("v0=c", now + 300) and await store.first_signature("v0=d", now + 300)
        failing = asyncio.create_task(store.record_signatures())
        await asyncio.sleep(0.05)
        with pytest.raises(SignatureWriteFailed):
            await store.record_signatures()
        with pytest.raises(sqlite3.OperationalError):
            await failing
        fail[0] = False
        await store.record_signatures()  # the failed write's signatures were kept for the next one
        assert await on_disk(store) == ["v0=a", "v0=b", "v0=c", "v0=d"]

    run(url, body)


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_a_write_cancelled_midway_leaves_no_transaction_open(tmp_path: Path, steps: int) -> None:
    """A turn cancelled (its deadline, a Stop, shutdown) while a multi-statement write awaits one of its
    statements: the statement still runs on the writer's thread. Before, a cancelled BEGIN was never rolled back,
    and every later write found a transaction open: accept_turn took a new event for a duplicate."""

    async def main() -> tuple[int | None, int]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            put = asyncio.ensure_future(store.put_conversation(("T1", "C1", "1.0"), "agent-a", "conv-1"))
            for _ in range(steps):
                await asyncio.sleep(0)
            put.cancel()
            await asyncio.gather(put, return_exceptions=True)
            turn = Turn("T1", "C1", "2.000001", "2.000001", "U1", "hi", event_id="Ev1")
            turn_id = await store.accept_turn(turn, "otid-1")
            return turn_id, await store.count_unfinished()
        finally:
            await store.close()

    turn_id, unfinished = asyncio.run(main())
    assert turn_id is not None and unfinished == 1


def test_the_per_post_stop_read_is_one_trip_off_the_writers_thread_and_a_take_one_write(tmp_path: Path) -> None:
    """A turn asks whether it was stopped before each post and each next agent: on SQLite one trip to the reader's
    thread, never queued on the writer's behind the turns' writes (a cursor there cost three trips each, a dozen a
    turn). Taking a turn marks it running and reads its words as they are in one trip to the writer's."""

    async def body(store: Store) -> None:
        assert isinstance(store, SqliteStore) and store._reader is not None
        a = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        assert a
        trips = {"writer": 0, "reader": 0}
        for name, conn in (("writer", store.db), ("reader", store._reader)):

            def counted(real: Any, name: str = name) -> Any:
                async def call(*args: Any, **kwargs: Any) -> Any:
                    trips[name] += 1
                    return await real(*args, **kwargs)

                return call

            conn._execute = counted(conn._execute)  # type: ignore[method-assign]
        assert await store.turn_stopped_by(a) is None
        assert trips == {"writer": 0, "reader": 1}
        taken = await store.take_turn(a)
        assert taken is not None and taken.words == "a"
        assert trips == {"writer": 1, "reader": 1}

    run(f"sqlite:///{tmp_path / 'bridge.db'}", body)
