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
        assert await store.schema_version() == 1
        await store.put_binding(Binding("T1", "C1", group(ALICE, BOB), bound_by="cli"))

    async def second(store: Store) -> None:
        assert await store.schema_version() == 1
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
        for agent in (ALICE, BOB, CAROL):
            unseen, upto = await store.unseen("T1", "C1", agent.id)
            await store.delivered("T1", "C1", agent.id, upto, AgentReply(agent.name, f"{agent.name} 1", agent.id))
        # Second turn: alice has not seen bob's and carol's first replies; bob has not seen carol's, nor alice's new one.
        unseen, upto = await store.unseen("T1", "C1", ALICE.id)
        assert [r.text for r in unseen] == ["bob 1", "carol 1"]
        await store.delivered("T1", "C1", ALICE.id, upto, AgentReply("alice", "alice 2", ALICE.id))
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
