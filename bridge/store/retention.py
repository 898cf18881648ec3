"""What finished turns leave behind, deleted once it is older than the retention (FINISHED_TURNS_DAYS): the turn
with the person's text, its journal steps (the agents' replies), its outbox and posts, its prepared attachments,
its settled approvals, and the event ids that kept Slack's retries out. Without it the database grows with every
turn (each reply's text is kept two or three times), past what a PaaS's small database plan holds within months.

The bridge-run transcript's old rows go too, once every agent that could be told them has seen them
(transcript_retention.py). Kept: unfinished turns, whatever their age; open approvals (an agent may still wait for
them on Letta); the threads' Letta conversations (a follow-up in an old thread goes on with the same conversation);
the transcript rows an agent has not seen yet, and each scope's last; feedback counts.

A thread whose deleted turns reached the agents is kept as one row of `pruned_threads`: a new mention there is a
follow-up to what they were told (`Store.earlier_turns_in_thread`), not a first one bringing the thread again.

Turns are read in id order, a window at a time: ids grow with time, so the walk stops at the first turn created
within the retention, and a pass costs what it deletes, not the table's size. One implementation serves both
backends (SQLite through the writer's thread as queued bookkeeping, Postgres through the pool)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.store.base import Store
from bridge.store.transcript_retention import Key, TranscriptPruned, postgres_prune, sqlite_prune

WINDOW_WITHIN = 60.0  # seconds a window's work gets on Postgres: a connection gone silent is dropped, not waited on
OPEN = ("received", "running", "stopping")  # base.UNFINISHED's statuses: never deleted

_DEPENDENTS = (
    # First, the threads that had a turn reach the agents: a new mention there is not their first (schema v16).
    "INSERT INTO pruned_threads (team_id, channel_id, thread_ts) SELECT DISTINCT team_id, channel_id, thread_ts"
    " FROM turns t WHERE id IN ({ids}) AND EXISTS (SELECT 1 FROM turn_steps s WHERE s.turn_id=t.id"
    " AND s.state='answered') ON CONFLICT DO NOTHING",
    "DELETE FROM outbox_posts WHERE outbox_id IN (SELECT id FROM outbox WHERE turn_id IN ({ids}))",
    "DELETE FROM outbox WHERE turn_id IN ({ids})",
    "DELETE FROM turn_steps WHERE turn_id IN ({ids})",
    "DELETE FROM turn_attachments WHERE turn_id IN ({ids})",
    "DELETE FROM approvals WHERE turn_id IN ({ids}) AND outcome IS NOT NULL",
    "DELETE FROM turns WHERE id IN ({ids})",
)


@dataclass(frozen=True)
class Pruned:
    """One window of turns looked at: how many were deleted, and the id to go on after (None: nothing older is
    left to look at)."""

    turns: int
    after_id: int | None


class Retention:
    def __init__(self, store: Store) -> None:
        self._store: Any = store
        self._sqlite = hasattr(store, "_transact")

    async def prune_turns(self, days: float, after_id: int = 0, limit: int = 200) -> Pruned:
        """Delete the finished turns among the `limit` turns after `after_id` whose last change is more than
        `days` old, with everything they left."""
        if self._sqlite:
            cutoff = _utc_now() - timedelta(days=days)
            result: Pruned = await self._store._transact(lambda conn: _sqlite_turns(conn, cutoff, after_id, limit))
            return result
        async with _bounded(self._store.pool) as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, status, created_at < now() - make_interval(secs => $3) AS created_old,"
                " updated_at < now() - make_interval(secs => $3) AS old"
                " FROM turns WHERE id > $1 ORDER BY id LIMIT $2",
                after_id,
                limit,
                days * 86400.0,
            )
            doomed = [int(r["id"]) for r in rows if r["old"] and r["status"] not in OPEN]
            if doomed:
                for statement in _DEPENDENTS:
                    await conn.execute(statement.format(ids="SELECT unnest($1::bigint[])"), doomed)
            return Pruned(len(doomed), _next(rows, limit, all(r["created_old"] for r in rows)))

    async def prune_transcript(self, days: float, after: Key | None = None, limit: int = 200) -> TranscriptPruned:
        """Delete the transcript rows among the `limit` oldest after `after` that are more than `days` old and that
        no agent can still be told."""
        if self._sqlite:
            cutoff = _utc_now() - timedelta(days=days)
            result: TranscriptPruned = await self._store._transact(
                lambda conn: sqlite_prune(conn, cutoff, after, limit)
            )
            return result
        async with _bounded(self._store.pool) as conn, conn.transaction():
            return await postgres_prune(conn, days, after, limit)

    async def prune_seen(self, days: float, limit: int = 1000) -> int:
        """Delete up to `limit` event ids recorded more than `days` ago; how many went."""
        if self._sqlite:
            cutoff = _utc_now() - timedelta(days=days)
            gone: int = await self._store._transact(lambda conn: _sqlite_seen(conn, cutoff, limit))
            return gone
        async with _bounded(self._store.pool) as conn:
            status = await conn.execute(
                "DELETE FROM seen_events WHERE event_id IN (SELECT event_id FROM seen_events"
                " WHERE at < now() - make_interval(secs => $1) LIMIT $2)",
                days * 86400.0,
                limit,
            )
        tail = str(status).rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0


def _bounded(pool: Any) -> AbstractAsyncContextManager[Any]:
    """A pool connection given WINDOW_WITHIN (postgres_locks.bounded). Imported here: postgres_locks imports
    asyncpg, which an install without the postgres extra (SQLite only) lacks."""
    from bridge.store.postgres_locks import bounded

    return bounded(pool, WINDOW_WITHIN)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _next(rows: Sequence[Any], limit: int, all_created_old: bool) -> int | None:
    """Where the next window starts: after this one's last turn, unless it was the table's end or reached a turn
    created within the retention (every later one is newer)."""
    if len(rows) < limit or not all_created_old:
        return None
    return int(rows[-1]["id"])


def _sqlite_turns(conn: sqlite3.Connection, cutoff: datetime, after_id: int, limit: int) -> Pruned:
    rows = conn.execute(
        "SELECT id, status, created_at, updated_at FROM turns WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
    ).fetchall()
    doomed = [int(r[0]) for r in rows if r[1] not in OPEN and datetime.fromisoformat(r[3]) < cutoff]
    if doomed:
        marks = ",".join("?" * len(doomed))
        for statement in _DEPENDENTS:
            conn.execute(statement.format(ids=marks), doomed)
    created_old = all(datetime.fromisoformat(r[2]) < cutoff for r in rows)
    return Pruned(len(doomed), _next([{"id": r[0]} for r in rows], limit, created_old))


def _sqlite_seen(conn: sqlite3.Connection, cutoff: datetime, limit: int) -> int:
    """Rowids grow with insertion, so the oldest are first: the walk stops at the first one within the
    retention."""
    rows = conn.execute("SELECT rowid, at FROM seen_events ORDER BY rowid LIMIT ?", (limit,)).fetchall()
    doomed = []
    for rowid, at in rows:
        if datetime.fromisoformat(at) >= cutoff:
            break
        doomed.append(int(rowid))
    if doomed:
        conn.execute(f"DELETE FROM seen_events WHERE rowid IN ({','.join('?' * len(doomed))})", doomed)  # noqa: S608
    return len(doomed)
