"""An unchanged connect of a Letta group whose record names a manager (supervisor, dynamic, sleeptime) or
max_turns is saved as a change every time: the store keeps none of them for a Letta group (binding_columns), so the
target read back never equals the one `prepare` resolved (resolve_target fills them in). A NUL in a name (an agent's,
a bridge pattern's manager, its termination token), which Postgres cannot hold, is kept as U+FFFD by both stores:
the same target saved again is no change, and on Postgres it was a database error."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.configure import Configurator, Connected
from bridge.domain import AgentRef, Binding, Target
from bridge.store import open_store

ALICE, BOB, BOSS = AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob"), AgentRef("agent-m", "boss")


def supervisor() -> Target:  # as targets._resolve_group makes it from Letta's group record
    return Target(kind="group", agents=(ALICE, BOB), group_id="group-1", manager_type="supervisor",
                  description="crew", manager=BOSS, max_turns=None)


def round_robin() -> Target:
    return Target(kind="group", agents=(ALICE, BOB), group_id="group-2", manager_type="round_robin",
                  description="crew", max_turns=4)


def nul_description() -> Target:  # Postgres keeps the NUL as U+FFFD
    return Target(kind="group", agents=(ALICE, BOB), group_id="group-3", manager_type="round_robin",
                  description="crew\x00")


NULS = [
    Target(kind="group", agents=(AgentRef("agent-a", "al\x00ice"), BOB), group_id="group-3",
           manager_type="round_robin", description="crew"),
    Target(kind="agents", agents=(ALICE, BOB), manager_type="supervisor", manager=AgentRef("agent-m", "bo\x00ss")),
    Target(kind="agents", agents=(ALICE, BOB), manager_type="dynamic", manager=BOSS, termination_token="DO\x00NE"),
]
TARGETS = [supervisor(), round_robin(), nul_description(), *NULS]
IDS = ["supervisor", "round_robin-max_turns", "nul-description", "nul-agent", "nul-manager", "nul-token"]


async def _again(url: str, target: Target) -> tuple[Connected, int]:
    store = open_store(url)
    await store.open()
    try:
        cfg = object.__new__(Configurator)
        cfg._store = store  # save() uses the store only
        first = Binding("T1", "C1", target, bound_by="U1", bound_at=datetime(2026, 1, 1, tzinfo=UTC))
        await cfg.save(Connected(first, None, None))  # type: ignore[arg-type]
        again = Binding("T1", "C1", target, bound_by="U1", bound_at=datetime(2026, 3, 1, tzinfo=UTC))
        result = await cfg.save(Connected(again, None, None))  # type: ignore[arg-type]
        return result, len(await store.history("T1", "C1", limit=20))
    finally:
        await store.close()


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_sqlite_unchanged_group_connect_is_no_change(tmp_path: Path, target: Target) -> None:
    result, entries = asyncio.run(_again(f"sqlite:///{tmp_path / 'b.db'}", target))
    assert result.unchanged and entries == 1, (result.unchanged, entries)


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_postgres_unchanged_group_connect_is_no_change(pg_url: str, target: Target) -> None:
    result, entries = asyncio.run(_again(pg_url, target))
    assert result.unchanged and entries == 1, (result.unchanged, entries)
