"""A channel whose id Slack changed for good (`channel_id_changed`: a private channel shared with another
organisation through Slack Connect, G... becoming C...; Slack asks apps to update what they stored under the old
id). What the bridge keeps under the old id moves to the new one in one transaction: the binding and its history,
the turns (so that a thread the bot answered still takes follow-ups), each thread's Letta conversations, what each
agent has not yet seen, the notices given once, the feedback counts. A turn running meanwhile stays under the old
id and ends there. One implementation serves both backends (`$n` placeholders become `?n` on SQLite).
"""

from __future__ import annotations

import re
from typing import Any

from bridge.store.base import Store

_NEW_SCOPE = "CAST($3 AS TEXT) || substr({t}.channel_id, length(CAST($2 AS TEXT)) + 1)"  # G1/ts -> C1/ts
_IN_SCOPE = "team_id=$1 AND (channel_id=$2 OR channel_id LIKE CAST($2 AS TEXT) || '/%')"  # the channel, its threads
_BINDING = (
    "UPDATE bindings SET channel_id=$3 WHERE team_id=$1 AND channel_id=$2"
    " AND NOT EXISTS (SELECT 1 FROM bindings WHERE team_id=$1 AND channel_id=$3)"
)


def _keyed(table: str, keys: str, scoped: bool = False) -> str:
    """Move a table's rows whose key the new id may already hold (a default target answered there before the
    event came): such a row stays under the old id rather than collide."""
    new = _NEW_SCOPE.format(t=table) if scoped else "$3"
    where = _IN_SCOPE if scoped else "team_id=$1 AND channel_id=$2"
    same = " AND ".join(f"x.{k}={table}.{k}" for k in keys.split())
    return (
        f"UPDATE {table} SET channel_id={new} WHERE {where} AND NOT EXISTS"  # noqa: S608 - constants only
        f" (SELECT 1 FROM {table} x WHERE x.team_id=$1 AND x.channel_id={new} AND {same})"
    )


_REST = (
    "UPDATE binding_history SET channel_id=$3 WHERE team_id=$1 AND channel_id=$2",
    "UPDATE turns SET channel_id=$3 WHERE team_id=$1 AND channel_id=$2 AND status NOT IN ('running', 'stopping')",
    _keyed("conversations", "thread_ts agent_id"),
    _keyed("transcript", "seq", scoped=True),
    _keyed("cursors", "agent_id", scoped=True),
    _keyed("notices", "kind"),
    "UPDATE feedback SET channel_id=$3 WHERE team_id=$1 AND channel_id=$2",
)


async def move_channel(store: Store, team_id: str, old: str, new: str) -> bool:
    """Move the channel's records from `old` to `new`; True when its binding moved. Nothing moves without one,
    or when a binding was already made under `new` (it is kept, and the old one left as it was)."""
    args = (team_id, old, new)
    raw: Any = store
    if hasattr(raw, "_write"):  # SQLite: one write transaction on the shared connection
        async with raw._write() as db:
            moved: bool = (await db.execute(_sqlite(_BINDING), args)).rowcount == 1
            for query in _REST if moved else ():
                await db.execute(_sqlite(query), args)
        return moved
    async with raw.pool.acquire() as conn, conn.transaction():
        moved = str(await conn.execute(_BINDING, *args)).endswith(" 1")
        for query in _REST if moved else ():
            await conn.execute(query, *args)
    return moved


def _sqlite(query: str) -> str:
    return re.sub(r"\$(\d+)", r"?\1", query)
