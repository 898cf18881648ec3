"""An unchanged connect (Configurator.save) reads the binding, then touches it (Store.touch_binding). A connect saved
meanwhile by another process (another group, another person) was the row the touch moved, by team and channel only:
its bound_at became the unchanged connect's time, and the admin was answered 'connected to this already' while the
channel was bound to the other group (or, after a disconnect meanwhile, to nothing). The touch now moves only the
binding that was read; where it changed meanwhile the connect is saved as asked, the later of the two."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from bridge.configure import Configurator, Connected
from bridge.domain import AgentRef, Binding, Target
from bridge.store import Store, open_store

ALICE, BOB = AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob")


def group(gid: str, *agents: AgentRef) -> Target:
    return Target(kind="group", agents=agents, group_id=gid, manager_type="round_robin", description="crew")


def _raced(tmp_path: Path, meanwhile: Callable[[Store], Awaitable[object]]) -> tuple[Binding | None, Connected]:
    """U1 connects the channel to group-1 again, unchanged; `meanwhile` runs just after save() read the binding."""
    early, now = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)

    async def main() -> tuple[Binding | None, Connected]:
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        await store.open()
        try:
            await store.put_binding(Binding("T1", "C1", group("group-1", ALICE), bound_by="U1", bound_at=early))
            read = store.get_binding

            async def racing_get(team: str, channel: str) -> Binding | None:
                found = await read(team, channel)
                await meanwhile(store)  # another process, just after the read
                return found

            store.get_binding = racing_get  # type: ignore[method-assign]
            cfg = object.__new__(Configurator)
            cfg._store = store  # save() uses the store only
            again = Binding("T1", "C1", group("group-1", ALICE), bound_by="U1", bound_at=now)
            result = await cfg.save(Connected(again, None, None))  # type: ignore[arg-type]
            store.get_binding = read  # type: ignore[method-assign]
            return await store.get_binding("T1", "C1"), result
        finally:
            await store.close()

    return asyncio.run(main())


def test_an_unchanged_connect_does_not_touch_a_binding_another_process_saved_meanwhile(tmp_path: Path) -> None:
    other_at = datetime(2026, 2, 1, tzinfo=UTC)
    saved, result = _raced(
        tmp_path,
        lambda store: store.put_binding(Binding("T1", "C1", group("group-2", BOB), bound_by="U2", bound_at=other_at)),
    )
    # U2's binding of group-2 is not given a time it was never set at: U1's connect, the later, is saved as asked.
    assert saved is not None and saved.target.group_id == "group-1" and saved.bound_by == "U1", saved
    assert saved.bound_at == datetime(2026, 3, 1, tzinfo=UTC) and not result.unchanged


def test_an_unchanged_connect_racing_a_disconnect_leaves_the_channel_connected(tmp_path: Path) -> None:
    """The admin was answered 'connected to this already: nothing changed' while the channel was not connected."""
    saved, result = _raced(tmp_path, lambda store: store.delete_binding("T1", "C1", "U2"))
    assert saved is not None and not result.unchanged, "answered 'connected to this already', yet not connected"
