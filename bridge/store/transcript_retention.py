"""The bridge-run transcript's old rows, deleted once every agent that could still be told them has seen them
(retention.py runs it on both backends). A row is what the agents other than its author are told next time, until
each one's cursor passes it, so a row goes only when it is older than the retention and:

- every cursor of its scope (the channel, or one thread where the thread is a Letta conversation) has reached it,
  its author's excepted (an agent is never told its own replies);
- in a thread's scope, every agent with a cursor in the channel (each one ever bound there) has a cursor in the
  thread: one without is told the thread's transcript from its start (`Store.unseen`, `from_start`);
- it is not the scope's last row: the next row is numbered after the last one there, so a cursor must never find
  its numbers given out again.

Only the agents the channel's binding may ask count, where the binding says who they are: an agent taken out of
the channel's group keeps its cursor (put back, it is told what it missed that is still kept), but it no longer
holds every later row of the channel for ever. An unbound channel (nothing is added to it) and a Letta group whose
manager the binding does not name (looked up on Letta at each turn) count every cursor.

Rows are read by time, a window at a time (the `transcript_age` index): a pass reads the old rows, not the table.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.domain import Binding
from bridge.store.rows import binding_from_row

Key = tuple[Any, str, str, int]  # (at, team_id, channel_id, seq): where a window ends, in the walk's order
Scope = tuple[str, str]  # (team_id, channel_id or channel_id/thread_ts)

_WINDOW = (
    "SELECT at, team_id, channel_id, seq, agent_id FROM transcript WHERE at < $1 {after}"
    " ORDER BY at, team_id, channel_id, seq LIMIT $2"
)
_AFTER = "AND (at, team_id, channel_id, seq) > ($3, $4, $5, $6)"
TOP = "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE team_id=$1 AND channel_id=$2"
CURSORS = "SELECT agent_id, seq FROM cursors WHERE team_id=$1 AND channel_id=$2"
DELETE = "DELETE FROM transcript WHERE team_id=$1 AND channel_id=$2 AND seq=$3"
BINDING = "SELECT * FROM bindings WHERE team_id=$1 AND channel_id=$2"


@dataclass(frozen=True)
class TranscriptPruned:
    """One window of old rows looked at: how many were deleted, and where the next window starts (None: no old
    row is left to look at)."""

    rows: int
    after: Key | None


@dataclass(frozen=True)
class ScopeState:
    top: int
    cursors: Mapping[str, int]  # agent id -> the last seq it has been shown
    members: frozenset[str]  # in a thread's scope, the agents with a cursor in its channel; empty otherwise
    listeners: frozenset[str] | None = None  # the agents the channel's binding may ask; None: every cursor counts


def window(after: Key | None) -> str:
    return _WINDOW.format(after=_AFTER if after is not None else "")


def parent(scope: Scope) -> Scope | None:
    """The channel of a thread's scope (conversations.thread_scope); None for a channel's."""
    channel, slash, _ = scope[1].partition("/")
    return (scope[0], channel) if slash else None


def channel_of(scope: Scope) -> Scope:
    return parent(scope) or scope


def listeners(binding: Binding | None) -> frozenset[str] | None:
    """The agents a channel's binding may ask (its agents and its manager); None where that is not known here: no
    binding, or a Letta group whose manager it does not name."""
    if binding is None:
        return None
    target = binding.target
    if target.kind == "group" and target.manager is None and target.manager_type not in (None, "round_robin"):
        return None
    return frozenset(agent.id for agent in target.members)


def doomed(rows: Sequence[Any], states: Mapping[Scope, ScopeState]) -> list[tuple[str, str, int]]:
    """The window's rows that no agent can still be told (the module's rules)."""
    gone = []
    for row in rows:
        scope = (str(row["team_id"]), str(row["channel_id"]))
        seq, author, state = int(row["seq"]), str(row["agent_id"]), states[scope]
        if seq >= state.top:
            continue
        counted = {agent for agent in (*state.cursors, *state.members) if agent != author}
        if state.listeners is not None:
            counted &= state.listeners
        # One that has a cursor and has not reached the row, or a channel's agent never asked in the thread.
        if any(state.cursors.get(agent, -1) < seq for agent in counted):
            continue
        gone.append((scope[0], scope[1], seq))
    return gone


def next_key(rows: Sequence[Any], limit: int) -> Key | None:
    if len(rows) < limit:
        return None
    last = rows[-1]
    return (last["at"], str(last["team_id"]), str(last["channel_id"]), int(last["seq"]))


def scopes(rows: Iterable[Any]) -> list[Scope]:
    return list(dict.fromkeys((str(r["team_id"]), str(r["channel_id"])) for r in rows))


def _q(query: str) -> str:
    return re.sub(r"\$(\d+)", r"?\1", query)


def sqlite_prune(conn: sqlite3.Connection, cutoff: datetime, after: Key | None, limit: int) -> TranscriptPruned:
    """One window, in the writer's transaction (times are UTC ISO text, which sorts as time does)."""
    args: tuple[Any, ...] = (cutoff.isoformat(), limit) + (after if after is not None else ())
    found = conn.execute(_q(window(after)), args)
    names = [column[0] for column in found.description]
    rows = [dict(zip(names, r, strict=True)) for r in found.fetchall()]

    def cursors(scope: Scope) -> dict[str, int]:
        return {str(a): int(s) for a, s in conn.execute(_q(CURSORS), scope).fetchall()}

    def binding(channel: Scope) -> Binding | None:
        found = conn.execute(_q(BINDING), channel)
        row = found.fetchone()
        return binding_from_row(dict(zip([c[0] for c in found.description], row, strict=True))) if row else None

    states = {}
    heard: dict[Scope, frozenset[str] | None] = {}  # per channel: its threads' scopes share its binding
    for scope in scopes(rows):
        top = int(conn.execute(_q(TOP), scope).fetchone()[0])
        channel = parent(scope)
        members = frozenset(cursors(channel)) if channel else frozenset()
        if channel_of(scope) not in heard:
            heard[channel_of(scope)] = listeners(binding(channel_of(scope)))
        states[scope] = ScopeState(top, cursors(scope), members, heard[channel_of(scope)])
    gone = doomed(rows, states)
    conn.executemany(_q(DELETE), gone)
    return TranscriptPruned(len(gone), next_key(rows, limit))


async def postgres_prune(conn: Any, days: float, after: Key | None, limit: int) -> TranscriptPruned:
    """One window, in the caller's transaction (the cutoff by the database's clock, as the rows' times are)."""
    query = window(after).replace("at < $1", "at < now() - make_interval(secs => $1)")
    rows = await conn.fetch(query, days * 86400.0, limit, *(after or ()))

    async def cursors(scope: Scope) -> dict[str, int]:
        return {str(r["agent_id"]): int(r["seq"]) for r in await conn.fetch(CURSORS, *scope)}

    states = {}
    heard: dict[Scope, frozenset[str] | None] = {}  # per channel: its threads' scopes share its binding
    for scope in scopes(rows):
        top = int(await conn.fetchval(TOP, *scope))
        channel = parent(scope)
        members = frozenset(await cursors(channel)) if channel else frozenset()
        if channel_of(scope) not in heard:
            binding = await conn.fetchrow(BINDING, *channel_of(scope))
            heard[channel_of(scope)] = listeners(binding_from_row(binding) if binding else None)
        states[scope] = ScopeState(top, await cursors(scope), members, heard[channel_of(scope)])
    gone = doomed(rows, states)
    if gone:
        await conn.executemany(DELETE, gone)
    return TranscriptPruned(len(gone), next_key(rows, limit))
