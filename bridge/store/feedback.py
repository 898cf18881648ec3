"""The `feedback` table (schema v6): a person's thumbs up or down on one agent's reply, once per person and reply.

A second press of the same button changes nothing; a change of mind (up, then down) replaces the vote: the
latest one counts, and `updated_at` says when it changed. One implementation serves both backends (the queries
are written with `$n` placeholders, which `installations.Sql` turns into `?n` on SQLite).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from bridge.store.base import Store
from bridge.store.sql import Sql

Vote = Literal["up", "down"]
Outcome = Literal["new", "changed", "same", "unknown_turn"]

_TABLE = """
    CREATE TABLE feedback (
        turn_id BIGINT NOT NULL, reply TEXT NOT NULL, user_id TEXT NOT NULL,
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, agent_name TEXT NOT NULL,
        vote TEXT NOT NULL, created_at {real} NOT NULL, updated_at {real} NOT NULL,
        PRIMARY KEY (turn_id, reply, user_id)
    );
    CREATE INDEX feedback_channel ON feedback (team_id, channel_id, agent_name);
"""
SQLITE_V6 = _TABLE.format(real="REAL")
POSTGRES_V6 = _TABLE.format(real="DOUBLE PRECISION")

_TURN = "SELECT team_id, channel_id FROM turns WHERE id=$1"
_PUT = (
    "INSERT INTO feedback (turn_id, reply, user_id, team_id, channel_id, agent_name, vote, created_at, updated_at)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8)"
    " ON CONFLICT (turn_id, reply, user_id) DO UPDATE SET vote=excluded.vote, updated_at=excluded.updated_at"
    " WHERE feedback.vote <> excluded.vote RETURNING created_at, updated_at"
)
_COUNTS = (
    "SELECT agent_name, SUM(CASE WHEN vote='up' THEN 1 ELSE 0 END) AS up,"
    " SUM(CASE WHEN vote='down' THEN 1 ELSE 0 END) AS down"
    " FROM feedback WHERE team_id=$1 AND channel_id=$2 GROUP BY agent_name ORDER BY agent_name"
)


@dataclass(frozen=True)
class Feedback:
    """One press: who, on which turn's reply (its step key), by which agent, up or down."""

    team_id: str
    turn_id: int
    reply: str
    agent_name: str
    user_id: str
    vote: Vote


@dataclass(frozen=True)
class AgentFeedback:
    agent_name: str
    up: int
    down: int


class FeedbackStore:
    def __init__(self, store: Store) -> None:
        self._sql = Sql(store)

    async def record(self, fb: Feedback) -> Outcome:
        """Record the vote: `new`, `changed` (the person changed their mind: the latest vote counts), `same`
        (pressed again: nothing recorded), or `unknown_turn` (no such turn in this workspace)."""
        turns = await self._sql.fetch(_TURN, fb.turn_id)
        if not turns or turns[0]["team_id"] != fb.team_id:
            return "unknown_turn"
        args = (fb.turn_id, fb.reply, fb.user_id, fb.team_id, turns[0]["channel_id"], fb.agent_name, fb.vote)
        # One statement says what it did (two presses at once each see the other's vote): no row, the same vote;
        # a row made now, new; a row made earlier, changed.
        put = await self._sql.write_returning(_PUT, *args, time.time())
        if not put:
            return "same"
        return "new" if put[0]["created_at"] == put[0]["updated_at"] else "changed"

    async def counts(self, team_id: str, channel_id: str) -> list[AgentFeedback]:
        """Each agent's current votes in the channel (a changed vote counts once, as it is now)."""
        rows = await self._sql.fetch(_COUNTS, team_id, channel_id)
        return [AgentFeedback(str(r["agent_name"]), int(r["up"] or 0), int(r["down"] or 0)) for r in rows]
