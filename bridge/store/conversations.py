"""The `conversations` table (schema v3): which Letta conversation holds each agent's side of a Slack thread.

Written once, on the thread's first send to that agent, before the send; read by every later turn of the
thread and by recovery after a restart. Replaced when Letta no longer has it; forgotten when the thread must
leave it (an App Server conversation stuck after a restart), so that the next send makes a new one. Both
backends share this file's rules: the first id stored for a (thread, agent) wins, so a racing second writer
gets the stored one back.
"""

from __future__ import annotations

from typing import Any, Protocol

SQLITE_V3 = """
    CREATE TABLE conversations (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, thread_ts TEXT NOT NULL, agent_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (team_id, channel_id, thread_ts, agent_id)
    );
"""

POSTGRES_V3 = """
    CREATE TABLE conversations (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, thread_ts TEXT NOT NULL, agent_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (team_id, channel_id, thread_ts, agent_id)
    );
"""

_GET = "SELECT conversation_id FROM conversations WHERE team_id=$1 AND channel_id=$2 AND thread_ts=$3 AND agent_id=$4"
# DO UPDATE (to itself) rather than DO NOTHING: it waits for a racing writer's row and returns it, where a
# separate SELECT could still read the statement's older snapshot.
_PUT = (
    "INSERT INTO conversations (team_id, channel_id, thread_ts, agent_id, conversation_id) VALUES ($1,$2,$3,$4,$5)"
    " ON CONFLICT (team_id, channel_id, thread_ts, agent_id)"
    " DO UPDATE SET conversation_id = conversations.conversation_id RETURNING conversation_id"
)


_REPLACE = (
    "UPDATE conversations SET conversation_id=$5"
    " WHERE team_id=$1 AND channel_id=$2 AND thread_ts=$3 AND agent_id=$4 AND conversation_id=$6"
)
_FORGET = (
    "DELETE FROM conversations"
    " WHERE team_id=$1 AND channel_id=$2 AND thread_ts=$3 AND agent_id=$4 AND conversation_id=$5"
)


class _Fetches(Protocol):
    """An asyncpg pool or connection."""

    async def fetchval(self, query: str, *args: Any) -> Any: ...

    async def execute(self, query: str, *args: Any) -> Any: ...


async def postgres_get(db: _Fetches, key: tuple[str, str, str, str]) -> str | None:
    found = await db.fetchval(_GET, *key)
    return None if found is None else str(found)


async def postgres_put(
    db: _Fetches, key: tuple[str, str, str, str], conversation_id: str, replacing: str | None
) -> str:
    if replacing is not None:
        await db.fetchval(_REPLACE, *key, conversation_id, replacing)
    stored = await db.fetchval(_PUT, *key, conversation_id)
    return str(stored)


async def postgres_forget(db: _Fetches, key: tuple[str, str, str, str], conversation_id: str) -> None:
    await db.execute(_FORGET, *key, conversation_id)


def thread_scope(channel_id: str, thread_ts: str) -> str:
    """The transcript key of one Slack thread: what each agent has not seen is kept per thread when the thread
    is a conversation (a channel id never holds a `/`), and per channel otherwise."""
    return f"{channel_id}/{thread_ts}"
