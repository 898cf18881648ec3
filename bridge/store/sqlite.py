"""The embedded default store: one SQLite file in WAL mode, created on first start, migrated in order."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bridge.domain import AgentFailure, AgentReply, Binding, RunnerChoice, StepRecord, Target, Turn
from bridge.store.base import (
    LIVE,
    UNFINISHED,
    HistoryEntry,
    OutboxItem,
    PendingTurn,
    StoreError,
    ThreadKey,
    binding_columns,
    binding_from_row,
    files_json,
    pending_from_row,
    sqlite_path,
    step_outcome,
)
from bridge.store.locks import UrgentFirstLock
from bridge.store.schema import SQLITE_MIGRATIONS as MIGRATIONS
from bridge.store.signatures import SeenSignatures

log = logging.getLogger(__name__)
PRIVATE = 0o600
T = TypeVar("T")
WRITES_QUEUED = 4  # bookkeeping transactions waiting on the writer's thread at once
Params = tuple[Any, ...]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _missing_folder(path: str) -> Path | None:
    parent = Path(path).expanduser().absolute().parent
    return None if parent.is_dir() else parent


def _encode_target(target: Target) -> str:
    return json.dumps([{"id": a.id, "name": a.name} for a in target.agents])


def hold_exclusively(path: str) -> int:
    """Lock `<path>.lock` for this process (flock, released by the kernel when the process ends, however it
    ends); StoreError naming the holder when another process has it. Returns the open descriptor to keep."""
    lock_path = f"{path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"another bridge process (pid {holder}) is already using {path}; a SQLite database serves one "
            "process: stop that one first, or use PostgreSQL (DATABASE_URL=postgres://...) to run several"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def private_files(path: str) -> None:
    """The database and its WAL and SHM files readable by their owner only: created so (SQLite gives the WAL
    and SHM files the database's mode), and an older world-readable file is tightened."""
    if not os.path.exists(path):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE))
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(name, PRIVATE)
            log.warning("database file was readable by others (mode %o); now 600 path=%s", mode, name)


class SqliteStore:
    def __init__(self, url: str, exclusive: bool = False) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._exclusive = exclusive
        self._lock_fd: int | None = None
        if exclusive and self.path != ":memory:" and _missing_folder(self.path) is None:
            self._lock_fd = hold_exclusively(self.path)  # at once: before the process builds anything else
        self._db: aiosqlite.Connection | None = None
        # Bookkeeping reads go to a connection of their own (WAL lets it read beside the writer), so that the
        # acknowledgement's write never waits behind them on the writer's thread.
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = UrgentFirstLock()  # multi-statement transactions (`_write`)
        self._queued = asyncio.Semaphore(WRITES_QUEUED)
        # SQLite means one process: binding leases live in memory (owner, monotonic expiry), so a restart
        # after a crash resumes at once instead of waiting for the dead process's leases to expire.
        self._leases: dict[tuple[str, str], tuple[str, float]] = {}
        self._signatures: SeenSignatures | None = None  # loaded by the first replay check (serving processes)

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    @asynccontextmanager
    async def _write(self, urgent: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction at a time on the shared connection; BEGIN IMMEDIATE takes the file lock
        first, so that two processes (or a migration racing a start) serialise instead of deadlocking.
        `urgent` writes (a new event, before Slack's ack) go ahead of queued turn bookkeeping."""
        async with self._write_lock.hold(urgent):
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def _transact(self, work: Callable[[sqlite3.Connection], T], urgent: bool = False) -> T:
        """One write transaction in a single trip to the writer's thread: BEGIN IMMEDIATE, `work`, COMMIT run
        there back to back, queued on that thread without waiting for the event loop between two of them (a
        lock handed from one writer to the next would cost a turn of a busy loop each, and bound the writes).
        Bookkeeping has at most WRITES_QUEUED transactions waiting there, so an urgent one (a new event, which
        Slack waits for) is never far from the front. The rare multi-statement transaction (`_write`) holds the
        write lock; a single-trip one that finds it open goes after it."""
        db = self.db

        def run(conn: sqlite3.Connection) -> tuple[bool, T | None]:
            if conn.in_transaction:  # a `_write` transaction is between two of its statements
                return False, None
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return True, result

        if urgent:
            done, result = await _in_thread(db, run)
        else:
            async with self._queued:
                done, result = await _in_thread(db, run)
        if not done:
            async with self._write_lock.hold(urgent):
                done, result = await _in_thread(db, run)
        return result  # type: ignore[return-value]  # T, as `work` returned it

    @property
    def _reads(self) -> aiosqlite.Connection:
        return self._reader or self.db

    async def _all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """A query's rows in one trip to the reader's thread."""
        return list(await self._reads.execute_fetchall(sql, params))

    async def _one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def open(self) -> None:
        if self.path != ":memory:":
            parent = await asyncio.to_thread(_missing_folder, self.path)
            if parent is not None:
                raise StoreError(f"cannot create the database {self.path}: the folder {parent} does not exist")
            if self._exclusive and self._lock_fd is None:
                self._lock_fd = await asyncio.to_thread(hold_exclusively, self.path)
            await asyncio.to_thread(private_files, self.path)
        try:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.execute("PRAGMA busy_timeout=5000")
            await self._migrate()
            if self.path != ":memory:":  # a second connection to :memory: would be another database
                self._reader = await aiosqlite.connect(self.path, isolation_level=None)
                self._reader.row_factory = sqlite3.Row
                await self._reader.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            await self.close()
            raise StoreError(f"cannot open the database {self.path}: {exc}") from None

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the flock goes with it
            self._lock_fd = None

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        async with self._write() as db:
            current = await self.schema_version()
            for version, script in enumerate(MIGRATIONS, start=1):
                if version > current:
                    for statement in filter(str.strip, script.split(";")):
                        await db.execute(statement)
                    await db.execute(f"PRAGMA user_version={version}")

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
                    _encode_target(t),
                    t.manager_type,
                    t.description,
                    binding.runner,
                    binding.bound_by,
                    binding.bound_at.isoformat(),
                    *binding_columns(t),
                ),
            )
            async with db.execute(_TOP_SEQ, (binding.team_id, binding.channel_id)) as cursor:
                row = await cursor.fetchone()
            top = int(row[0]) if row else 0
            for agent in t.members:
                # An agent new to this channel starts from now: it is not shown replies from before it joined.
                await db.execute(
                    "INSERT OR IGNORE INTO cursors (team_id, channel_id, agent_id, seq) VALUES (?,?,?,?)",
                    (binding.team_id, binding.channel_id, agent.id, top),
                )
            await self._log(binding.team_id, binding.channel_id, "connect", t.ref, binding.runner, binding.bound_by)
        return previous

    async def delete_binding(self, team_id: str, channel_id: str, actor: str) -> Binding | None:
        async with self._write() as db:
            previous = await self._binding_in_write(team_id, channel_id)
            if previous is None:
                return None
            await db.execute("DELETE FROM bindings WHERE team_id=? AND channel_id=?", (team_id, channel_id))
            await self._log(team_id, channel_id, "disconnect", previous.target.ref, previous.runner, actor)
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
            await self._log(team_id, channel_id, "runner", binding.target.ref, runner, actor)

    async def history(self, team_id: str, channel_id: str, limit: int = 10) -> list[HistoryEntry]:
        rows = await self._all(
            "SELECT action, target, runner, actor, at FROM binding_history WHERE team_id=? AND channel_id=?"
            " ORDER BY id DESC LIMIT ?",
            (team_id, channel_id, limit),
        )
        return [
            HistoryEntry(r["action"], r["target"], r["runner"], r["actor"], datetime.fromisoformat(r["at"]))
            for r in rows
        ]

    async def _log(self, team_id: str, channel_id: str, action: str, target: str, runner: str, actor: str) -> None:
        await self.db.execute(
            "INSERT INTO binding_history (team_id, channel_id, action, target, runner, actor, at)"
            " VALUES (?,?,?,?,?,?,?)",
            (team_id, channel_id, action, target, runner, actor, _now()),
        )

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        now = _now()
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
                "UPDATE turns SET status=?, error=?, updated_at=? WHERE id=? AND status<>'stopped'",
                (status, error, _now(), turn_id),
            )
        )

    async def stop_turns(self, team_id: str, channel_id: str, thread_ts: str | None, by: str) -> list[int]:
        query = "UPDATE turns SET status='stopped', error=?, updated_at=? WHERE team_id=? AND channel_id=?"
        params: tuple[str, ...] = (f"stopped by {by}", _now(), team_id, channel_id)
        if thread_ts is not None:
            query += " AND thread_ts=?"
            params += (thread_ts,)
        async with self._write() as db:
            cursor = await db.execute(query + " AND status IN ('received', 'running') RETURNING id", params)
            rows = await cursor.fetchall()
        return sorted(int(r[0]) for r in rows)

    async def turn_stopped_by(self, turn_id: int) -> str | None:
        async with self.db.execute("SELECT status, error FROM turns WHERE id=?", (turn_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None or row[0] != "stopped":
            return None
        return str(row[1]).removeprefix("stopped by ")

    async def thread_answered(self, team_id: str, channel_id: str, thread_ts: str) -> bool:
        row = await self._one(
            "SELECT 1 FROM turns WHERE team_id=? AND channel_id=? AND thread_ts=? AND status<>'unbound' LIMIT 1",
            (team_id, channel_id, thread_ts),
        )
        return row is not None

    async def earlier_turns_in_thread(self, team_id: str, channel_id: str, thread_ts: str, turn_id: int) -> int:
        row = await self._one(
            "SELECT COUNT(*) FROM turns WHERE team_id=? AND channel_id=? AND thread_ts=? AND id<?",
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
                (team_id, channel_id, kind, _now()),
            )
            return cursor.rowcount > 0

        return await self._transact(once)

    async def unseen(
        self, team_id: str, channel_id: str, agent_id: str, from_start: bool = False
    ) -> tuple[list[AgentReply], int]:
        def read(conn: sqlite3.Connection) -> tuple[list[AgentReply], int]:
            # One read transaction: the cursor and the top of the transcript as of the same moment.
            conn.execute("BEGIN")
            try:
                row = conn.execute(
                    "SELECT seq FROM cursors WHERE team_id=? AND channel_id=? AND agent_id=?",
                    (team_id, channel_id, agent_id),
                ).fetchone()
                top = _top_seq(conn, team_id, channel_id)
                since = int(row[0]) if row else 0 if from_start else top
                rows = conn.execute(
                    "SELECT seq, agent_id, agent_name, text FROM transcript WHERE team_id=? AND channel_id=?"
                    " AND seq>? AND seq<=? AND agent_id<>? ORDER BY seq",
                    (team_id, channel_id, since, top, agent_id),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
            return [AgentReply(r["agent_name"], r["text"], r["agent_id"]) for r in rows], top

        if self._reader is None:  # :memory: has one connection, shared with the writer
            async with self._write_lock.hold():
                return await _in_thread(self.db, read)
        return await _in_thread(self._reader, read)

    async def set_turn_status(self, turn_id: int, status: str) -> bool:
        changed: int = await self._transact(
            lambda conn: conn.execute(
                "UPDATE turns SET status=?, updated_at=? WHERE id=? AND status<>'stopped'", (status, _now(), turn_id)
            ).rowcount
        )
        return changed == 1

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

    async def turns_ahead(self, team_id: str, channel_id: str, thread_ts: str, in_thread: bool) -> int:
        newest = await self._one(
            f"SELECT MAX(id) FROM turns INDEXED BY turns_unfinished_thread WHERE {UNFINISHED}"  # noqa: S608
            " AND team_id=? AND channel_id=? AND thread_ts=?",
            (team_id, channel_id, thread_ts),
        )
        if newest is None or newest[0] is None:
            return 0
        index = "turns_unfinished_thread" if in_thread else "turns_unfinished"
        query = f"SELECT COUNT(*) FROM turns INDEXED BY {index} WHERE {UNFINISHED} AND team_id=? AND channel_id=?"  # noqa: S608
        params: Params = (team_id, channel_id)
        if in_thread:
            query += " AND thread_ts=?"
            params += (thread_ts,)
        row = await self._one(query + " AND id<?", (*params, int(newest[0])))
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

    async def get_step(self, turn_id: int, step: str) -> StepRecord | None:
        row = await self._one(
            "SELECT state, replies, failure, updated_at FROM turn_steps WHERE turn_id=? AND step=?", (turn_id, step)
        )
        if row is None:
            return None
        replies = tuple(AgentReply(**r) for r in json.loads(row["replies"]))
        failure = AgentFailure(**json.loads(row["failure"])) if row["failure"] else None
        return StepRecord(row["state"], replies, failure, datetime.fromisoformat(row["updated_at"]))

    async def step_sending(self, turn_id: int, step: str) -> None:
        await self._transact(
            lambda conn: conn.execute(
                "INSERT INTO turn_steps (turn_id, step, state, updated_at) VALUES (?,?,?,?)"
                " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at",
                (turn_id, step, "sending", _now()),
            )
        )

    async def step_answered(
        self,
        turn_id: int,
        step: str,
        replies: list[AgentReply],
        failure: AgentFailure | None,
        seen: tuple[str, str, str, int] | None,
    ) -> None:
        """The step's outcome and, for a bridge-run agent, its transcript move, in one transaction."""
        state, encoded, failed = step_outcome(replies, failure)

        def answered(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO turn_steps (turn_id, step, state, replies, failure, updated_at) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, replies=excluded.replies,"
                " failure=excluded.failure, updated_at=excluded.updated_at",
                (turn_id, step, state, encoded, failed, _now()),
            )
            if seen is not None:
                team_id, channel_id, agent_id, upto = seen
                for reply in replies:
                    seq = _top_seq(conn, team_id, channel_id) + 1
                    conn.execute(
                        "INSERT INTO transcript (team_id, channel_id, seq, agent_id, agent_name, text)"
                        " VALUES (?,?,?,?,?,?)",
                        (team_id, channel_id, seq, agent_id, reply.agent_name, reply.text),
                    )
                conn.execute(
                    "INSERT INTO cursors (team_id, channel_id, agent_id, seq) VALUES (?,?,?,?)"
                    " ON CONFLICT (team_id, channel_id, agent_id) DO UPDATE SET seq=MAX(seq, excluded.seq)",
                    (team_id, channel_id, agent_id, upto),
                )

        await self._transact(answered)

    async def outbox_add(self, turn_id: int, source: str, agent_name: str | None, text: str) -> int | None:
        def add(conn: sqlite3.Connection) -> int | None:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (turn_id, source, agent_name, text) VALUES (?,?,?,?)",
                (turn_id, source, agent_name, text),
            )
            return cursor.lastrowid if cursor.rowcount else None

        return await self._transact(add)

    async def outbox_pending(self, turn_id: int) -> list[OutboxItem]:
        rows = await self._all(
            "SELECT o.id, o.source, o.agent_name, o.text, GROUP_CONCAT(p.part) AS parts FROM outbox o"
            " LEFT JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=? AND o.done=0 GROUP BY o.id ORDER BY o.id",
            (turn_id,),
        )
        return [
            OutboxItem(
                r["id"],
                r["source"],
                r["agent_name"],
                r["text"],
                frozenset(int(p) for p in str(r["parts"]).split(",")) if r["parts"] is not None else frozenset(),
            )
            for r in rows
        ]

    async def outbox_posted(self, outbox_id: int, part: int, ts: str, last: bool) -> None:
        def posted(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO outbox_posts (outbox_id, part, ts) VALUES (?,?,?)", (outbox_id, part, ts)
            )
            if last:
                conn.execute("UPDATE outbox SET done=1 WHERE id=?", (outbox_id,))

        await self._transact(posted)

    async def live_started(self, turn_id: int, key: str, agent_name: str, ts: str) -> None:
        def started(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (turn_id, source, agent_name, text, done) VALUES (?,?,?,?,1)",
                (turn_id, LIVE + key, agent_name, ""),
            )
            if cursor.rowcount:
                conn.execute("INSERT INTO outbox_posts (outbox_id, part, ts) VALUES (?,?,?)", (cursor.lastrowid, 0, ts))

        await self._transact(started)

    async def live_ts(self, turn_id: int, key: str) -> str | None:
        row = await self._one(
            "SELECT p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=? AND o.source=?",
            (turn_id, LIVE + key),
        )
        return None if row is None else str(row[0])

    async def posts_of(self, turn_id: int) -> list[tuple[str | None, str]]:
        """(agent name, ts) of everything posted for the turn, in order (a draft counts as its reply)."""
        rows = await self._all(
            "SELECT o.agent_name, p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=?"
            " AND o.source NOT LIKE 'live:%' ORDER BY o.id, p.part",
            (turn_id,),
        )
        return [(r[0], r[1]) for r in rows]

    async def conversation(self, thread: ThreadKey, agent_id: str) -> str | None:
        row = await self._one(
            "SELECT conversation_id FROM conversations WHERE team_id=? AND channel_id=? AND thread_ts=? AND agent_id=?",
            (*thread, agent_id),
        )
        return None if row is None else str(row[0])

    async def put_conversation(
        self, thread: ThreadKey, agent_id: str, conversation_id: str, replacing: str | None = None
    ) -> str:
        async with self._write() as db:
            await db.execute(
                "UPDATE conversations SET conversation_id=? WHERE team_id=? AND channel_id=? AND thread_ts=?"
                " AND agent_id=? AND conversation_id=?",
                (conversation_id, *thread, agent_id, replacing),
            )
            await db.execute(
                "INSERT OR IGNORE INTO conversations (team_id, channel_id, thread_ts, agent_id, conversation_id,"
                " created_at) VALUES (?,?,?,?,?,?)",
                (*thread, agent_id, conversation_id, _now()),
            )
        return await self.conversation(thread, agent_id) or conversation_id

    async def ping(self) -> None:
        await self._one("SELECT 1")

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
    async def agent_lock(self, agent_ids: Sequence[str]) -> AsyncIterator[None]:
        """One process: the Letta client's in-process locks already keep each agent to one send."""
        yield


_TOP_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE team_id=? AND channel_id=?"


def _top_seq(conn: sqlite3.Connection, team_id: str, channel_id: str) -> int:
    row = conn.execute(_TOP_SEQ, (team_id, channel_id)).fetchone()
    return int(row[0]) if row else 0


async def _in_thread(db: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` on the connection's own thread in one trip (aiosqlite's public calls are one statement each)."""
    result: T = await db._execute(work, db._conn)  # type: ignore[no-untyped-call]
    return result
