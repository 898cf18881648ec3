"""The embedded default store: one SQLite file in WAL mode, created on first start, migrated in order.

This module holds the bindings and their history, the queue of turns, replay signatures, notices and the
binding leases (in memory: SQLite means one process); `sqlite_journal.py` a running turn's record and
`sqlite_connection.py` the file and its threads."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from bridge.domain import Binding, RunnerChoice, Target, Turn
from bridge.pattern_words import how
from bridge.store.base import STOPS, UNFINISHED, HistoryEntry, PendingTurn, StoppedTurn, stopper
from bridge.store.rows import (
    binding_columns,
    binding_from_row,
    files_from_json,
    files_json,
    pending_from_row,
    same_binding,
)
from bridge.store.signatures import SeenSignatures
from bridge.store.slack_changes import UnrunEnd, how_unrun
from bridge.store.sqlite_connection import (
    TOP_SEQ,
    Params,
    T,
    in_thread,
    now_text,
)
from bridge.store.sqlite_journal import SqliteJournal
from bridge.store.sqlite_stops import StopWatch
from bridge.store.turn_binding import ANSWERED_IN_THREAD, Taken, binding_from_json, binding_json

# A turn's end (status, error, time): a `stopping` one ends as stopped, keeping who stopped it.
FINISHED = (
    "status = CASE status WHEN 'stopping' THEN 'stopped' ELSE ? END,"
    " error = CASE status WHEN 'stopping' THEN error ELSE ? END, updated_at=?"
)


def encode_target(target: Target) -> str:
    return json.dumps([{"id": a.id, "name": a.name} for a in target.agents])


class SqliteStore(SqliteJournal):
    def __init__(self, url: str, exclusive: bool = False, migrate: bool = True) -> None:
        super().__init__(url, exclusive, migrate)
        # SQLite means one process: binding leases live in memory (owner, monotonic expiry), so a restart
        # after a crash resumes at once instead of waiting for the dead process's leases to expire.
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}
        self._signatures: SeenSignatures | None = None  # loaded by the first replay check (serving processes)
        self._stops: StopWatch | None = None  # the serving process's (sqlite_stops.py); a command's store reads

    async def open(self) -> None:
        await super().open()
        if self._exclusive and self._migrates and self.path != ":memory:":
            stops = StopWatch()
            await in_thread(self.db, stops.watch)
            self._stops = stops

    async def get_binding(self, team_id: str, channel_id: str) -> Binding | None:
        row = await self._one("SELECT * FROM bindings WHERE team_id=? AND channel_id=?", (team_id, channel_id))
        return binding_from_row(row) if row else None

    async def _binding_in_write(self, team_id: str, channel_id: str) -> Binding | None:
        """The binding as the open write transaction sees it."""
        async with self.db.execute(
            "SELECT * FROM bindings WHERE team_id=? AND channel_id=?", (team_id, channel_id)
        ) as cursor:
            row = await cursor.fetchone()
        return binding_from_row(row) if row else None

    async def put_binding(self, binding: Binding) -> Binding | None:
        t = binding.target
        async with self._write() as db:
            previous = await self._binding_in_write(binding.team_id, binding.channel_id)
            await db.execute(
                "INSERT OR REPLACE INTO bindings (team_id, channel_id, kind, group_id, agents, manager_type,"
                " description, runner, bound_by, bound_at, manager_id, manager_name, max_turns, termination_token)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    binding.team_id,
                    binding.channel_id,
                    t.kind,
                    t.group_id,
                    encode_target(t),
                    t.manager_type,
                    t.description,
                    binding.runner,
                    binding.bound_by,
                    binding.bound_at.isoformat(),
                    *binding_columns(t),
                ),
            )
            async with db.execute(TOP_SEQ, (binding.team_id, binding.channel_id)) as cursor:
                row = await cursor.fetchone()
            top = int(row[0]) if row else 0
            for agent in t.members:
                # An agent new to this channel starts from now: it is not shown replies from before it joined.
                await db.execute(
                    "INSERT OR IGNORE INTO cursors (team_id, channel_id, agent_id, seq) VALUES (?,?,?,?)",
                    (binding.team_id, binding.channel_id, agent.id, top),
                )
            await self._log(binding.team_id, binding.channel_id, "connect", t, binding.runner, binding.bound_by)
        return previous

    async def touch_binding(self, binding: Binding) -> bool:
        async with self._write() as db:
            if not same_binding(await self._binding_in_write(binding.team_id, binding.channel_id), binding):
                return False
            sql = "UPDATE bindings SET bound_at=? WHERE team_id=? AND channel_id=?"
            await db.execute(sql, (binding.bound_at.isoformat(), binding.team_id, binding.channel_id))
            return True

    async def delete_binding(self, team_id: str, channel_id: str, actor: str) -> Binding | None:
        async with self._write() as db:
            previous = await self._binding_in_write(team_id, channel_id)
            if previous is None:
                return None
            await db.execute("DELETE FROM bindings WHERE team_id=? AND channel_id=?", (team_id, channel_id))
            await self._log(team_id, channel_id, "disconnect", previous.target, previous.runner, actor)
        return previous

    async def list_bindings(self, team_id: str | None = None) -> list[Binding]:
        query = "SELECT * FROM bindings"
        params: tuple[str, ...] = ()
        if team_id is not None:
            query += " WHERE team_id=?"
            params = (team_id,)
        rows = await self._all(query + " ORDER BY team_id, channel_id", params)
        return [binding_from_row(row) for row in rows]

    async def set_runner(self, team_id: str, channel_id: str, runner: RunnerChoice, actor: str) -> None:
        async with self._write() as db:
            binding = await self._binding_in_write(team_id, channel_id)
            if binding is None:
                return
            await db.execute(
                "UPDATE bindings SET runner=? WHERE team_id=? AND channel_id=?", (runner, team_id, channel_id)
            )
            await self._log(team_id, channel_id, "runner", binding.target, runner, actor)

    async def history(self, team_id: str, channel_id: str, limit: int = 10) -> list[HistoryEntry]:
        rows = await self._all(
            "SELECT action, target, runner, actor, at, pattern FROM binding_history WHERE team_id=? AND channel_id=?"
            " ORDER BY id DESC LIMIT ?",
            (team_id, channel_id, limit),
        )
        return [
            HistoryEntry(
                r["action"], r["target"], r["runner"], r["actor"], datetime.fromisoformat(r["at"]), r["pattern"]
            )
            for r in rows
        ]

    async def _log(self, team_id: str, channel_id: str, action: str, target: Target, runner: str, actor: str) -> None:
        await self.db.execute(
            "INSERT INTO binding_history (team_id, channel_id, action, target, runner, actor, at, pattern)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (team_id, channel_id, action, target.ref, runner, actor, now_text(), how(target)),
        )

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        now = now_text()
        row = (
            turn.team_id,
            turn.channel_id,
            turn.message_ts,
            turn.thread_ts,
            turn.user_id,
            turn.text,
            otid,
            turn.event_id,
            "received",
            now,
            now,
            files_json(turn.files),
        )

        def accept(conn: sqlite3.Connection) -> int | None:
            if turn.event_id:
                seen = conn.execute(
                    "INSERT OR IGNORE INTO seen_events (event_id, at) VALUES (?, ?)", (turn.event_id, now)
                )
                if seen.rowcount == 0:
                    return None
            cursor = conn.execute(
                "INSERT OR IGNORE INTO turns (team_id, channel_id, message_ts, thread_ts, user_id, text, otid,"
                " event_id, status, created_at, updated_at, files) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                row,
            )
            return cursor.lastrowid if cursor.rowcount else None

        # Slack waits for this one: it goes ahead of every queued bookkeeping write, and carries the signatures
        # checked since the last write (the request's own among them).
        return await self._with_signatures(accept)

    async def finish_turn(self, turn_id: int, status: str, error: str = "") -> None:
        await self._transact(
            lambda conn: conn.execute(
                f"UPDATE turns SET {FINISHED} WHERE id=? AND status<>'stopped'",  # noqa: S608
                (status, error, now_text(), turn_id),
            )
        )
        if self._stops is not None:
            self._stops.ended(turn_id)

    async def stop_turns(
        self, team_id: str, channel_id: str, thread_ts: str | None, by: str
    ) -> list[StoppedTurn]:
        query = f"UPDATE turns SET {STOPS}, error=?, updated_at=? WHERE team_id=? AND channel_id=?"  # noqa: S608
        params: tuple[str, ...] = (f"stopped by {by}", now_text(), team_id, channel_id)
        if thread_ts is not None:
            query += " AND thread_ts=?"
            params += (thread_ts,)
        async with self._write() as db:
            cursor = await db.execute(query + " AND status IN ('received', 'running') RETURNING id, status", params)
            rows = await cursor.fetchall()
        return sorted(StoppedTurn(int(r[0]), r[1] == "stopped") for r in rows)

    async def unrun_end(self, turn_id: int) -> UnrunEnd | None:
        row = await self._one("SELECT error FROM turns WHERE id=? AND binding IS NULL AND status='stopped'", (turn_id,))
        return None if row is None else how_unrun(str(row[0]))

    async def turn_stopped_by(self, turn_id: int) -> str | None:
        if self._stops is not None and self._stops.running(turn_id):
            return None  # taken here, and no stop written for it since
        # Else one trip to the reader's thread (a cursor costs three on the writer's, behind the turns' writes).
        row = await self._one("SELECT status, error FROM turns WHERE id=?", (turn_id,))
        if row is None or row[0] not in ("stopping", "stopped"):
            return None
        return stopper(str(row[1]))

    async def first_stop(self, key: str) -> bool:
        def take(conn: sqlite3.Connection) -> bool:
            seen = conn.execute("INSERT OR IGNORE INTO seen_events (event_id, at) VALUES (?, ?)", (key, now_text()))
            return seen.rowcount == 1

        # Before Slack's ack, as accept_turn: ahead of the queued bookkeeping, with the signatures checked so far.
        return await self._with_signatures(take) is True

    async def thread_answered(self, team_id: str, channel_id: str, thread_ts: str, besides: str = "") -> bool:
        row = await self._one(
            f"SELECT 1 FROM turns WHERE team_id=? AND channel_id=? AND thread_ts=? AND message_ts<>?"  # noqa: S608
            f" AND {ANSWERED_IN_THREAD} LIMIT 1",
            (team_id, channel_id, thread_ts, besides),
        )
        return row is not None

    async def last_turn_in_thread(self, team_id: str, channel_id: str, thread_ts: str) -> int:
        row = await self._one(
            "SELECT max(id) FROM turns WHERE team_id=? AND channel_id=? AND thread_ts=?",
            (team_id, channel_id, thread_ts),
        )
        return int(row[0]) if row and row[0] is not None else 0

    async def earlier_turns_in_thread(self, team_id: str, channel_id: str, thread_ts: str, turn_id: int) -> int:
        row = await self._one(
            "SELECT COUNT(*) + (SELECT COUNT(*) FROM pruned_threads WHERE team_id=?1 AND channel_id=?2"
            " AND thread_ts=?3) FROM turns t WHERE team_id=?1 AND channel_id=?2 AND thread_ts=?3 AND id<?4"
            " AND EXISTS (SELECT 1 FROM turn_steps s WHERE s.turn_id=t.id AND s.state='answered')",
            (team_id, channel_id, thread_ts, turn_id),
        )
        return int(row[0]) if row else 0

    async def first_signature(self, signature: str, expires_at: float) -> bool:
        """Checked in memory; written with the request's first write or by `record_signatures` (signatures.py)."""
        if self._signatures is None:
            signatures = SeenSignatures()
            await self._transact(signatures.load, urgent=True)
            self._signatures = self._signatures or signatures
        return self._signatures.first(signature, expires_at)

    async def record_signatures(self) -> None:
        """Every signature checked so far is in the database when this returns: those not yet taken are written
        now, and the writes already carrying others (another request's, maybe this one's) are waited for."""
        if self._signatures is None:
            return
        earlier = self._signatures.writing()
        await self._with_signatures(lambda conn: None, only_if_any=True)
        await SeenSignatures.written(earlier)

    async def _with_signatures(self, work: Callable[[sqlite3.Connection], T], only_if_any: bool = False) -> T | None:
        """`work` in an urgent transaction that first writes the signatures checked since the last such write."""
        batch = self._signatures.take() if self._signatures is not None else None
        if batch is None or not batch.signatures:
            return None if only_if_any else await self._transact(work, urgent=True)
        signatures = self._signatures
        assert signatures is not None

        def both(conn: sqlite3.Connection) -> T:
            SeenSignatures.write(conn, batch.signatures)
            return work(conn)

        ok = False
        try:
            result = await self._transact(both, urgent=True)
            ok = True
            return result
        finally:
            signatures.finish(batch, ok)

    async def notice_once(self, team_id: str, channel_id: str, kind: str) -> bool:
        def once(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO notices (team_id, channel_id, kind, at) VALUES (?,?,?,?)",
                (team_id, channel_id, kind, now_text()),
            )
            return cursor.rowcount > 0

        return await self._transact(once)

    async def take_turn(
        self, turn_id: int, binding: Binding | None = None, channel_id: str | None = None
    ) -> Taken | None:
        def take(conn: sqlite3.Connection) -> Taken | None:
            row = conn.execute(
                "UPDATE turns SET status='running', updated_at=?, binding=COALESCE(binding, ?)"
                " WHERE id=? AND status IN ('received', 'running') AND (? IS NULL OR channel_id=?)"
                " RETURNING text, binding, files",
                (now_text(), binding_json(binding), turn_id, channel_id, channel_id),
            ).fetchone()
            return Taken(str(row[0]), binding_from_json(row[1]), files_from_json(row[2])) if row is not None else None

        taken = await self._transact(take)
        if taken is not None and self._stops is not None:
            self._stops.taken(turn_id)
        return taken

    async def unfinished_turns(self, team_id: str | None = None, channel_id: str | None = None) -> list[PendingTurn]:
        query = f"SELECT * FROM turns WHERE {UNFINISHED}"  # noqa: S608
        params: tuple[str, ...] = ()
        if team_id is not None and channel_id is not None:
            query += " AND team_id=? AND channel_id=?"
            params = (team_id, channel_id)
        return [pending_from_row(r) for r in await self._all(query + " ORDER BY id", params)]

    async def next_turn(
        self, team_id: str, channel_id: str, thread_ts: str | None = None, skip: Collection[int] = ()
    ) -> PendingTurn | None:
        index = "turns_unfinished" if thread_ts is None else "turns_unfinished_thread"
        query = f"SELECT * FROM turns INDEXED BY {index} WHERE {UNFINISHED} AND team_id=? AND channel_id=?"  # noqa: S608
        params: list[Any] = [team_id, channel_id]
        if thread_ts is not None:
            query += " AND thread_ts=?"
            params.append(thread_ts)
        if skip:
            query += f" AND id NOT IN ({','.join('?' * len(skip))})"
            params += sorted(skip)
        row = await self._one(query + " ORDER BY id LIMIT 1", tuple(params))
        return pending_from_row(row) if row else None

    async def waiting_threads(self, team_id: str, channel_id: str) -> list[str]:
        rows = await self._all(
            f"SELECT thread_ts FROM turns INDEXED BY turns_unfinished_thread WHERE {UNFINISHED}"  # noqa: S608
            " AND team_id=? AND channel_id=? GROUP BY thread_ts ORDER BY MIN(id)",
            (team_id, channel_id),
        )
        return [str(r[0]) for r in rows]

    async def turns_ahead(
        self, team_id: str, channel_id: str, thread_ts: str, in_thread: bool, skip: Collection[int] = ()
    ) -> int:
        # One trip: the thread's newest unfinished turn is a subquery (NULL when none, and nothing counts).
        aside = f" AND id NOT IN ({','.join('?' * len(skip))})" if skip else ""
        index = "turns_unfinished_thread" if in_thread else "turns_unfinished"
        query = f"SELECT COUNT(*) FROM turns INDEXED BY {index} WHERE {UNFINISHED} AND team_id=? AND channel_id=?"  # noqa: S608
        params: Params = (team_id, channel_id)
        if in_thread:
            query += " AND thread_ts=?"
            params += (thread_ts,)
        newest = (
            f" AND id<(SELECT MAX(id) FROM turns INDEXED BY turns_unfinished_thread WHERE {UNFINISHED}"  # noqa: S608
            f" AND team_id=? AND channel_id=? AND thread_ts=?{aside})"
        )
        skipped = tuple(sorted(skip))
        row = await self._one(query + aside + newest, (*params, *skipped, team_id, channel_id, thread_ts, *skipped))
        return int(row[0]) if row else 0

    async def count_unfinished(self, team_id: str | None = None, channel_id: str | None = None) -> int:
        query = f"SELECT COUNT(*) FROM turns WHERE {UNFINISHED}"  # noqa: S608
        params: Params = ()
        if team_id is not None and channel_id is not None:
            query = f"SELECT COUNT(*) FROM turns INDEXED BY turns_unfinished WHERE {UNFINISHED}"  # noqa: S608
            query += " AND team_id=? AND channel_id=?"
            params = (team_id, channel_id)
        row = await self._one(query, params)
        return int(row[0]) if row else 0

    def _live_lease(self, key: tuple[str, str]) -> str | None:
        held = self._leases.get(key)
        return held[0] if held is not None and held[1] > time.monotonic() else None

    async def claim_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        key = (team_id, channel_id)
        if self._live_lease(key) not in (None, owner):
            return False
        self._leases[key] = (owner, time.monotonic() + seconds)
        return True

    async def renew_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        key = (team_id, channel_id)
        held = self._leases.get(key)
        if held is None or held[0] != owner:
            return False
        self._leases[key] = (owner, time.monotonic() + seconds)
        return True

    async def release_binding(self, team_id: str, channel_id: str, owner: str) -> None:
        held = self._leases.get((team_id, channel_id))
        if held is not None and held[0] == owner:
            del self._leases[(team_id, channel_id)]

    async def orphaned_bindings(self) -> list[tuple[str, str]]:
        rows = await self._all(
            f"SELECT team_id, channel_id FROM turns WHERE {UNFINISHED} GROUP BY team_id, channel_id"  # noqa: S608
            " ORDER BY MIN(id)"
        )
        keys = [(str(r[0]), str(r[1])) for r in rows]
        return [key for key in keys if self._live_lease(key) is None]

    @asynccontextmanager
    async def agent_lock(self, agent_ids: Sequence[str]) -> AsyncIterator[set[str]]:
        """One process: the Letta client's in-process locks already keep each agent to one send."""
        yield set()

    @asynccontextmanager
    async def token_lock(self, name: str) -> AsyncIterator[None]:
        """One process: the renewal's in-process lock suffices."""
        yield
