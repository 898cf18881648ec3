from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from bridge.domain import AgentRef, AgentReply, Binding, Target, Turn
from bridge.store import Store, StoreError, open_store

ALICE, BOB, CAROL = AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob"), AgentRef("agent-c", "carol")


def run(tmp_path: Path, body: Callable[[Store], Awaitable[None]]) -> None:
    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(main())


def group(*agents: AgentRef) -> Target:
    return Target(kind="group", agents=agents, group_id="group-1", manager_type="round_robin", description="crew")


def test_file_is_created_migrated_and_reopened_without_loss(tmp_path: Path) -> None:
    async def first(store: Store) -> None:
        assert await store.schema_version() == 2
        await store.put_binding(Binding("T1", "C1", group(ALICE, BOB), bound_by="cli"))

    async def second(store: Store) -> None:
        assert await store.schema_version() == 2
        [binding] = await store.list_bindings()
        assert binding.target.agents == (ALICE, BOB) and binding.bound_by == "cli"

    run(tmp_path, first)
    run(tmp_path, second)
    assert (tmp_path / "bridge.db").exists()


def test_bindings_are_per_workspace_and_rebinding_returns_what_it_replaced(tmp_path: Path) -> None:
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

    run(tmp_path, body)


def test_a_turn_is_accepted_once_by_event_id_and_by_message(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        turn = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", event_id="Ev1")
        assert await store.accept_turn(turn, "otid-1") is not None
        assert await store.accept_turn(turn, "otid-2") is None
        same_message = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", event_id="Ev2")
        assert await store.accept_turn(same_message, "otid-3") is None

    run(tmp_path, body)


def test_transcript_shows_each_agent_only_the_others_replies_it_has_not_seen(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await store.put_binding(Binding("T1", "C1", group(ALICE, BOB, CAROL)))
        async def answer(turn_id: int, agent: AgentRef, text: str) -> list[str]:
            unseen, upto = await store.unseen("T1", "C1", agent.id)
            reply = AgentReply(agent.name, text, agent.id)
            await store.step_answered(turn_id, agent.id, [reply], None, ("T1", "C1", agent.id, upto))
            return [r.text for r in unseen]

        for agent in (ALICE, BOB, CAROL):
            await answer(1, agent, f"{agent.name} 1")
        # Second turn: alice has not seen bob's and carol's first replies; bob has not seen carol's, nor alice's new one.
        assert await answer(2, ALICE, "alice 2") == ["bob 1", "carol 1"]
        step = await store.get_step(2, ALICE.id)
        assert step is not None and step.state == "answered" and step.replies[0].text == "alice 2"
        unseen, _ = await store.unseen("T1", "C1", BOB.id)
        assert [r.text for r in unseen] == ["carol 1", "alice 2"]
        # An agent added later starts from now.
        dora = AgentRef("agent-d", "dora")
        await store.put_binding(Binding("T1", "C1", group(ALICE, BOB, CAROL, dora)))
        assert (await store.unseen("T1", "C1", dora.id))[0] == []

    run(tmp_path, body)


def test_notices_are_due_once(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        assert await store.notice_once("T1", "C1", "route_missing") is True
        assert await store.notice_once("T1", "C1", "route_missing") is False

    run(tmp_path, body)


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


def test_outbox_owes_each_message_once_and_remembers_posted_parts(tmp_path: Path) -> None:
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

    run(tmp_path, body)


def test_unfinished_turns_come_back_oldest_first(tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        a = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        b = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        c = await store.accept_turn(Turn("T1", "C2", "1.000003", "1.000003", "U1", "c", "Ev3"), "o3")
        assert a and b and c
        await store.set_turn_status(b, "running")
        await store.finish_turn(c, "done")
        assert [(p.turn_id, p.otid, p.turn.text) for p in await store.unfinished_turns()] == [(a, "o1", "a"), (b, "o2", "b")]

    run(tmp_path, body)
