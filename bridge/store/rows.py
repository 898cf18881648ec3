"""How the stores' rows map to the bridge's own objects and back, the same on SQLite and Postgres: a binding, a
turn, an answered step, and a target as a store keeps it (what an unchanged `/letta connect` is compared with)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any, Protocol

from bridge.domain import AgentFailure, AgentRef, AgentReply, Binding, SharedFile, Target, Turn
from bridge.store.base import PendingTurn, stopper


class Row(Protocol):
    """A result row by column name: sqlite3.Row and asyncpg.Record both are."""

    def __getitem__(self, key: str) -> Any: ...


def binding_from_row(row: Row) -> Binding:
    """A `bindings` row; `agents` is JSON text, `bound_at` ISO text (SQLite) or a datetime (Postgres)."""
    agents = tuple(AgentRef(a["id"], a["name"]) for a in json.loads(row["agents"]))
    manager = AgentRef(row["manager_id"], row["manager_name"] or row["manager_id"]) if row["manager_id"] else None
    target = Target(
        kind=row["kind"],
        agents=agents,
        group_id=row["group_id"],
        manager_type=row["manager_type"],
        description=row["description"],
        manager=manager,
        max_turns=row["max_turns"],
        termination_token=row["termination_token"],
    )
    bound_at = row["bound_at"]
    return Binding(
        team_id=row["team_id"],
        channel_id=row["channel_id"],
        target=target,
        runner=row["runner"],
        bound_by=row["bound_by"],
        bound_at=bound_at if isinstance(bound_at, datetime) else datetime.fromisoformat(bound_at),
    )


def binding_columns(target: Target) -> tuple[str | None, str | None, int | None, str | None]:
    """(manager_id, manager_name, max_turns, termination_token) as the `bindings` row keeps them (schema v9): a
    bridge-defined group's own; a Letta group's live on its record and are looked up there (letta/groups.py)."""
    if target.kind == "group":
        return None, None, None, None
    manager, token = target.manager, target.termination_token
    return (manager.id if manager else None, _no_nul(manager.name) if manager else None, target.max_turns,
            _no_nul(token) if token is not None else None)


def _no_nul(text: str) -> str:
    """Text as both stores keep it: PostgreSQL cannot hold a NUL (U+FFFD instead), SQLite keeps the same."""
    return text.replace("\x00", "\ufffd")


def stored(target: Target) -> Target:
    """`target` as a store reads it back: a Letta group's manager, max_turns and termination_token are not kept
    (`binding_columns`), and Postgres keeps a NUL in a description or name as U+FFFD. So a target just resolved
    from Letta compares equal to the same one saved."""
    group, manager, token = target.kind == "group", target.manager, target.termination_token
    return dataclasses.replace(
        target,
        agents=tuple(AgentRef(a.id, _no_nul(a.name)) for a in target.agents),
        description=_no_nul(target.description),
        manager=None if group or manager is None else AgentRef(manager.id, _no_nul(manager.name)),
        max_turns=None if group else target.max_turns,
        termination_token=None if group or token is None else _no_nul(token),
    )


def same_binding(current: Binding | None, binding: Binding) -> bool:
    """The channel's binding is `binding` in what it says (its target as stored, runner and who set it), whenever
    saved."""
    return current is not None and (stored(current.target), current.runner, current.bound_by) == (
        stored(binding.target), binding.runner, binding.bound_by
    )


def step_outcome(replies: list[AgentReply], failure: AgentFailure | None) -> tuple[str, str, str | None]:
    """(state, replies JSON, failure JSON) of an answered step, the same on every backend: a step that failed
    but still said something counts as answered, so its replies are replayed."""
    state = "failed" if failure is not None and not replies else "answered"
    encoded = json.dumps([dataclasses.asdict(r) for r in replies])
    return state, encoded, json.dumps(dataclasses.asdict(failure)) if failure else None


def files_json(files: tuple[SharedFile, ...]) -> str:
    """A turn's shared files as stored in `turns.files` (schema v10)."""
    return json.dumps([dataclasses.asdict(f) for f in files])


def files_from_json(text: str | None) -> tuple[SharedFile, ...]:
    return tuple(SharedFile(**item) for item in json.loads(text or "[]"))


def pending_from_row(row: Row) -> PendingTurn:
    """A `turns` row."""
    turn = Turn(
        team_id=row["team_id"],
        channel_id=row["channel_id"],
        message_ts=row["message_ts"],
        thread_ts=row["thread_ts"],
        user_id=row["user_id"],
        text=row["text"],
        event_id=row["event_id"],
        files=files_from_json(row["files"]),
    )
    status = str(row["status"])
    stopped_by = stopper(str(row["error"])) if status == "stopping" else None
    return PendingTurn(turn, int(row["id"]), row["otid"], started=status != "received", stopped_by=stopped_by)
