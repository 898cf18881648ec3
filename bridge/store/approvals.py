"""The `approvals` table (schema v8): one row per tool call an agent asked a person to approve.

A row holds the request (the turn and its step, the thread, the agent, its conversation, the tool call, the card's
ts, who asked) and, once, the decision (who, approve or deny, the reason, when; whether it was sent to Letta and
how that ended). The decision is written by a conditional UPDATE that only the first caller wins, before anything
is sent: a double click, two people at once, Slack retrying the action, a timeout racing a click, or a restart
while the card waits all decide once. One implementation serves both backends (`installations.Sql`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bridge.store.base import Store
from bridge.store.sql import Sql

Outcome = Literal["sent", "stale", "stopped"]

_TABLE = """
    CREATE TABLE approvals (
        id {serial},
        turn_id BIGINT NOT NULL, step TEXT NOT NULL, tool_call_id TEXT NOT NULL,
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, thread_ts TEXT NOT NULL,
        agent_id TEXT NOT NULL, agent_name TEXT NOT NULL, conversation_id TEXT,
        request_id TEXT NOT NULL, tool_name TEXT NOT NULL, arguments TEXT NOT NULL,
        asked_by TEXT NOT NULL, card_ts TEXT, created_at {real} NOT NULL,
        decided_by TEXT, approve INTEGER, reason TEXT, decided_at {real},
        sent_at {real}, outcome TEXT,
        UNIQUE (turn_id, step, tool_call_id)
    );
    CREATE INDEX approvals_open ON approvals (team_id, channel_id, thread_ts) WHERE outcome IS NULL;
"""
SQLITE_V8 = _TABLE.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL")
POSTGRES_V8 = _TABLE.format(serial="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION")

_ASK = (
    "INSERT INTO approvals (turn_id, step, tool_call_id, team_id, channel_id, thread_ts, agent_id, agent_name,"
    " conversation_id, request_id, tool_name, arguments, asked_by, created_at)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) ON CONFLICT (turn_id, step, tool_call_id) DO NOTHING"
)
_FOR_STEP = "SELECT * FROM approvals WHERE turn_id=$1 AND step=$2 ORDER BY id"
_FOR_TURN = "SELECT * FROM approvals WHERE turn_id=$1 ORDER BY id"
_ONE = "SELECT * FROM approvals WHERE id=$1"
_CARD = "UPDATE approvals SET card_ts=$2 WHERE id=$1 AND card_ts IS NULL"
_DECIDE = (
    "UPDATE approvals SET decided_by=$2, approve=$3, reason=$4, decided_at=$5"
    " WHERE id=$1 AND decided_at IS NULL AND outcome IS NULL"
)
_SENDING = "UPDATE approvals SET sent_at=$2 WHERE id=$1 AND sent_at IS NULL"
_SETTLE = "UPDATE approvals SET outcome=$2 WHERE id=$1 AND outcome IS NULL"
_OPEN_FOR = (
    "SELECT * FROM approvals WHERE team_id=$1 AND agent_id=$2 AND outcome IS NULL AND card_ts IS NOT NULL ORDER BY id"
)
_OPEN_IN = (
    "SELECT * FROM approvals WHERE team_id=$1 AND channel_id=$2 AND outcome IS NULL"
    " AND ($3 = '' OR thread_ts=$3) ORDER BY id"
)


@dataclass(frozen=True)
class Asked:
    """One tool call an agent wants to run, as the turn records it before the card is posted."""

    turn_id: int
    step: str
    tool_call_id: str
    team_id: str
    channel_id: str
    thread_ts: str
    agent_id: str
    agent_name: str
    conversation_id: str | None
    request_id: str
    tool_name: str
    arguments: str
    asked_by: str


@dataclass(frozen=True)
class Approval:
    """A recorded request and, once decided, its decision (`approve` is None until then)."""

    id: int
    asked: Asked
    card_ts: str | None
    created_at: float
    decided_by: str | None
    approve: bool | None
    reason: str
    decided_at: float | None
    sent_at: float | None
    outcome: str | None

    @property
    def decided(self) -> bool:
        return self.decided_at is not None


def _approval(row: dict[str, Any]) -> Approval:
    asked = Asked(
        int(row["turn_id"]),
        str(row["step"]),
        str(row["tool_call_id"]),
        str(row["team_id"]),
        str(row["channel_id"]),
        str(row["thread_ts"]),
        str(row["agent_id"]),
        str(row["agent_name"]),
        None if row["conversation_id"] is None else str(row["conversation_id"]),
        str(row["request_id"]),
        str(row["tool_name"]),
        str(row["arguments"]),
        str(row["asked_by"]),
    )
    approve = row["approve"]
    return Approval(
        int(row["id"]),
        asked,
        None if row["card_ts"] is None else str(row["card_ts"]),
        float(row["created_at"]),
        None if row["decided_by"] is None else str(row["decided_by"]),
        None if approve is None else bool(approve),
        str(row["reason"] or ""),
        None if row["decided_at"] is None else float(row["decided_at"]),
        None if row["sent_at"] is None else float(row["sent_at"]),
        None if row["outcome"] is None else str(row["outcome"]),
    )


class ApprovalStore:
    def __init__(self, store: Store) -> None:
        self._sql = Sql(store)

    async def ask(self, calls: Sequence[Asked]) -> list[Approval]:
        """Record the step's tool calls (again after a restart: nothing changes) and return the step's rows."""
        now = time.time()
        for a in calls:
            await self._sql.execute(
                _ASK,
                a.turn_id,
                a.step,
                a.tool_call_id,
                a.team_id,
                a.channel_id,
                a.thread_ts,
                a.agent_id,
                a.agent_name,
                a.conversation_id,
                a.request_id,
                a.tool_name,
                a.arguments,
                a.asked_by,
                now,
            )
        return await self.for_step(calls[0].turn_id, calls[0].step) if calls else []

    async def for_step(self, turn_id: int, step: str) -> list[Approval]:
        return [_approval(r) for r in await self._sql.fetch(_FOR_STEP, turn_id, step)]

    async def for_turn(self, turn_id: int) -> list[Approval]:
        return [_approval(r) for r in await self._sql.fetch(_FOR_TURN, turn_id)]

    async def get(self, approval_id: int) -> Approval | None:
        rows = await self._sql.fetch(_ONE, approval_id)
        return _approval(rows[0]) if rows else None

    async def card_posted(self, approval_id: int, ts: str) -> None:
        await self._sql.execute(_CARD, approval_id, ts)

    async def decide(self, approval_id: int, by: str, approve: bool, reason: str) -> bool:
        """Record the decision; False when it was already decided (or settled): the first decision stands."""
        return await self._sql.execute(_DECIDE, approval_id, by, int(approve), reason, time.time()) == 1

    async def sending(self, approval_id: int) -> bool:
        """Written just before the decision goes to Letta: after a restart, a decision sent may have run. False when
        one was marked as sent before."""
        return await self._sql.execute(_SENDING, approval_id, time.time()) == 1

    async def denying(self, calls: Sequence[Asked]) -> bool:
        """A request the agent made in answer to a stop's denial: recorded as stopped (it gets no card) and marked as
        being sent, as the first denial is. False when it was marked before: its denial may have gone already."""
        rows = [r for r in await self.ask(calls) if r.asked.tool_call_id in {a.tool_call_id for a in calls}]
        for row in rows:
            await self.settle(row.id, "stopped")
        return all([await self.sending(row.id) for row in rows])

    async def settle(self, approval_id: int, outcome: Outcome) -> None:
        await self._sql.execute(_SETTLE, approval_id, outcome)

    async def open_in(self, team_id: str, channel_id: str, thread_ts: str = "") -> list[Approval]:
        """Requests not settled yet in the channel (in one thread when `thread_ts` is given), oldest first."""
        return [_approval(r) for r in await self._sql.fetch(_OPEN_IN, team_id, channel_id, thread_ts)]

    async def waiting_for(self, team_id: str, agent_id: str) -> list[Approval]:
        """The agent's requests whose cards are in Slack and not settled yet, in any channel, oldest first."""
        return [_approval(r) for r in await self._sql.fetch(_OPEN_FOR, team_id, agent_id)]
