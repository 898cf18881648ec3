"""The shared store for production on a PaaS: PostgreSQL through asyncpg with a connection pool.

The same tables and semantics as the SQLite store, so that several `web` processes share one database:
unique constraints drop a retried event whichever process it reaches; a binding's turns are run by the process
holding its lease (`binding_leases`, taken with an upsert that only wins when the lease is free, expired or
already the caller's); and each Letta send holds a session advisory lock per agent on a connection of its own,
which PostgreSQL releases by itself when a process dies. Migrations run under a transaction-level advisory lock,
so two processes starting at once migrate once.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import TYPE_CHECKING

from bridge.domain import Binding, RunnerChoice, Target, Turn
from bridge.pattern_words import how
from bridge.store.base import STOPS, UNFINISHED, HistoryEntry, PendingTurn, StoppedTurn, stopper
from bridge.store.postgres_connection import ALIVE_SECONDS, as_json, clean, connect_options
from bridge.store.postgres_journal import PostgresJournal
from bridge.store.postgres_locks import ACK_SECONDS, bounded
from bridge.store.rows import (
    binding_columns,
    binding_from_row,
    files_from_json,
    files_json,
    pending_from_row,
    same_binding,
)
from bridge.store.slack_changes import UnrunEnd, how_unrun
from bridge.store.turn_binding import ANSWERED_IN_THREAD, Taken, binding_from_json, binding_json

if TYPE_CHECKING:
    from bridge.store.postgres_connection import Conn

__all__ = ["PostgresStore", "connect_options"]

# One statement, so one round trip: the event is marked seen and its turn inserted together, or neither.
_ACCEPT = (
    "WITH seen AS (INSERT INTO seen_events (event_id) VALUES ($8) ON CONFLICT DO NOTHING RETURNING 1)"
    " INSERT INTO turns (team_id, channel_id, message_ts, thread_ts, user_id, text, otid, event_id, status, files)"
    " SELECT $1,$2,$3,$4,$5,$6,$7,$8,'received',$9 WHERE EXISTS (SELECT 1 FROM seen)"
    " ON CONFLICT DO NOTHING RETURNING id"
)
_ACCEPT_UNSEEN = (
    "INSERT INTO turns (team_id, channel_id, message_ts, thread_ts, user_id, text, otid, event_id, status, files)"
    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'received',$9) ON CONFLICT DO NOTHING RETURNING id"
)

# A turn's end ($2 status, $3 error): a `stopping` one ends as stopped, keeping who stopped it.
FINISHED_PG = (
    "status = CASE status WHEN 'stopping' THEN 'stopped' ELSE $2 END,"
    " error = CASE status WHEN 'stopping' THEN error ELSE $3 END, updated_at=now()"
)


class PostgresStore(PostgresJournal):
    def __init__(
        self,
        url: str,
        pool_size: int = 5,
        lock_connections: int = 16,
        migrate: bool = True,
        alive_seconds: float = ALIVE_SECONDS,
        serving: bool = True,
    ) -> None:
        super().__init__(url, pool_size, lock_connections, migrate, alive_seconds, serving)
        self._signatures = 0  # signatures recorded by this process: every hundredth clears the expired ones

    async def get_binding(self, team_id: str, channel_id: str) -> Binding | None:
        row = await self.pool.fetchrow("SELECT * FROM bindings WHERE team_id=$1 AND channel_id=$2", team_id, channel_id)
        return binding_from_row(row) if row else None

    async def put_binding(self, binding: Binding) -> Binding | None:
        t = binding.target
        agents = [{"id": a.id, "name": clean(a.name)} for a in t.agents]  # json.dumps would escape a NUL past clean
        async with self._tx() as db:
            row = await db.fetchrow(
                "SELECT * FROM bindings WHERE team_id=$1 AND channel_id=$2 FOR UPDATE",
                binding.team_id,
                binding.channel_id,
            )
            await db.execute(
                "INSERT INTO bindings (team_id, channel_id, kind, group_id, agents, manager_type, description,"
                " runner, bound_by, bound_at, manager_id, manager_name, max_turns, termination_token)"
                " VALUES ($1,$2,$3,$4,$5::jsonb,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
                " ON CONFLICT (team_id, channel_id) DO UPDATE SET kind=excluded.kind, group_id=excluded.group_id,"
                " agents=excluded.agents, manager_type=excluded.manager_type, description=excluded.description,"
                " runner=excluded.runner, bound_by=excluded.bound_by, bound_at=excluded.bound_at,"
                " manager_id=excluded.manager_id, manager_name=excluded.manager_name, max_turns=excluded.max_turns,"
                " termination_token=excluded.termination_token",
                binding.team_id,
                binding.channel_id,
                t.kind,
                t.group_id,
                as_json(agents),
                t.manager_type,
                clean(t.description),
                binding.runner,
                binding.bound_by,
                binding.bound_at,
                *binding_columns(t),
            )
            top = await self._top_seq(db, binding.team_id, binding.channel_id)
            # An agent new to this channel starts from now: it is not shown replies from before it joined.
            await db.executemany(
                "INSERT INTO cursors (team_id, channel_id, agent_id, seq) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
                [(binding.team_id, binding.channel_id, agent.id, top) for agent in t.members],
            )
            await self._log(db, binding.team_id, binding.channel_id, "connect", t, binding.runner, binding.bound_by)
        return binding_from_row(row) if row else None

    async def touch_binding(self, binding: Binding) -> bool:
        async with self._tx() as db:
            row = await db.fetchrow(
                "SELECT * FROM bindings WHERE team_id=$1 AND channel_id=$2 FOR UPDATE", binding.team_id,
                binding.channel_id,
            )
            if not same_binding(binding_from_row(row) if row else None, binding):
                return False
            sql = "UPDATE bindings SET bound_at=$3 WHERE team_id=$1 AND channel_id=$2"
            await db.execute(sql, binding.team_id, binding.channel_id, binding.bound_at)
            return True

    async def delete_binding(self, team_id: str, channel_id: str, actor: str) -> Binding | None:
        async with self._tx() as db:
            row = await db.fetchrow(
                "DELETE FROM bindings WHERE team_id=$1 AND channel_id=$2 RETURNING *", team_id, channel_id
            )
            if row is None:
                return None
            previous = binding_from_row(row)
            await self._log(db, team_id, channel_id, "disconnect", previous.target, previous.runner, actor)
        return previous

    async def list_bindings(self, team_id: str | None = None) -> list[Binding]:
        if team_id is None:
            rows = await self.pool.fetch("SELECT * FROM bindings ORDER BY team_id, channel_id")
        else:
            rows = await self.pool.fetch("SELECT * FROM bindings WHERE team_id=$1 ORDER BY channel_id", team_id)
        return [binding_from_row(row) for row in rows]

    async def set_runner(self, team_id: str, channel_id: str, runner: RunnerChoice, actor: str) -> None:
        async with self._tx() as db:
            row = await db.fetchrow(
                "UPDATE bindings SET runner=$3 WHERE team_id=$1 AND channel_id=$2 RETURNING *",
                team_id,
                channel_id,
                runner,
            )
            if row is not None:
                await self._log(db, team_id, channel_id, "runner", binding_from_row(row).target, runner, actor)

    async def history(self, team_id: str, channel_id: str, limit: int = 10) -> list[HistoryEntry]:
        rows = await self.pool.fetch(
            "SELECT action, target, runner, actor, at, pattern FROM binding_history WHERE team_id=$1 AND channel_id=$2"
            " ORDER BY id DESC LIMIT $3",
            team_id,
            channel_id,
            limit,
        )
        return [HistoryEntry(r["action"], r["target"], r["runner"], r["actor"], r["at"], r["pattern"]) for r in rows]

    @staticmethod
    async def _log(
        db: Conn, team_id: str, channel_id: str, action: str, target: Target, runner: str, actor: str
    ) -> None:
        await db.execute(
            "INSERT INTO binding_history (team_id, channel_id, action, target, runner, actor, pattern)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7)",
            team_id,
            channel_id,
            action,
            target.ref,
            runner,
            actor,
            clean(how(target)),
        )

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        # Two processes given the same event: the second insert waits on the unique index for the first
        # transaction, then finds the row and does nothing.
        pool = self._accepts or self.pool
        values = (turn.team_id, turn.channel_id, turn.message_ts, turn.thread_ts, turn.user_id, turn.text, otid)
        # Bounded under Slack's 3 s: a connection gone silent (a failover that black-holed the old primary) is
        # dropped, the delivery answered 500 (Slack retries it), and the retry finds a fresh connection. Unbounded,
        # the wait never ended (asyncpg's pool waits on a cancelled query's answer) and every retry queued behind it.
        async with bounded(pool, ACK_SECONDS) as conn:
            turn_id = await conn.fetchval(
                _ACCEPT if turn.event_id else _ACCEPT_UNSEEN,
                *(clean(v) for v in values),
                clean(turn.event_id),
                clean(files_json(turn.files)),
            )
        return None if turn_id is None else int(turn_id)

    async def finish_turn(self, turn_id: int, status: str, error: str = "") -> None:
        await self.pool.execute(
            f"UPDATE turns SET {FINISHED_PG} WHERE id=$1 AND status<>'stopped'",  # noqa: S608
            turn_id,
            status,
            clean(error),
        )

    async def stop_turns(
        self, team_id: str, channel_id: str, thread_ts: str | None, by: str
    ) -> list[StoppedTurn]:
        rows = await self.pool.fetch(
            f"UPDATE turns SET {STOPS}, error=$4, updated_at=now() WHERE team_id=$1 AND channel_id=$2"  # noqa: S608
            " AND ($3::text IS NULL OR thread_ts=$3) AND status IN ('received', 'running') RETURNING id, status",
            team_id,
            channel_id,
            thread_ts,
            clean(f"stopped by {by}"),
        )
        return sorted(StoppedTurn(int(r["id"]), r["status"] == "stopped") for r in rows)

    async def unrun_end(self, turn_id: int) -> UnrunEnd | None:
        row = await self.pool.fetchrow(
            "SELECT error FROM turns WHERE id=$1 AND binding IS NULL AND status='stopped'", turn_id
        )
        return None if row is None else how_unrun(str(row["error"]))

    async def turn_stopped_by(self, turn_id: int) -> str | None:
        row = await self.pool.fetchrow("SELECT status, error FROM turns WHERE id=$1", turn_id)
        if row is None or row["status"] not in ("stopping", "stopped"):
            return None
        return stopper(str(row["error"]))

    async def first_stop(self, key: str) -> bool:
        # As accept_turn's: two processes given a copy each, the second waits on the key for the first's insert.
        pool = self._accepts or self.pool
        taken = await pool.fetchval(
            "INSERT INTO seen_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1", clean(key)
        )
        return taken is not None

    async def take_turn(
        self, turn_id: int, binding: Binding | None = None, channel_id: str | None = None
    ) -> Taken | None:
        row = await self.pool.fetchrow(
            "UPDATE turns SET status='running', updated_at=now(), binding=COALESCE(binding, $2)"
            " WHERE id=$1 AND status IN ('received', 'running') AND ($3::text IS NULL OR channel_id=$3)"
            " RETURNING text, binding, files",
            turn_id, binding_json(binding), channel_id,
        )
        if row is None:
            return None
        return Taken(str(row["text"]), binding_from_json(row["binding"]), files_from_json(row["files"]))

    @staticmethod
    def _unfinished(select: str, team_id: str | None, channel_id: str | None) -> tuple[str, list[object]]:
        """`SELECT <select> FROM turns` of the unfinished turns: all of them, or the binding's."""
        query = f"SELECT {select} FROM turns WHERE {UNFINISHED}"  # noqa: S608
        if team_id is None or channel_id is None:
            return query, []
        return query + " AND team_id=$1 AND channel_id=$2", [team_id, channel_id]

    async def unfinished_turns(self, team_id: str | None = None, channel_id: str | None = None) -> list[PendingTurn]:
        query, args = self._unfinished("*", team_id, channel_id)
        return [pending_from_row(row) for row in await self.pool.fetch(query + " ORDER BY id", *args)]

    async def next_turn(
        self, team_id: str, channel_id: str, thread_ts: str | None = None, skip: Collection[int] = ()
    ) -> PendingTurn | None:
        query = f"SELECT * FROM turns WHERE {UNFINISHED} AND team_id=$1 AND channel_id=$2"  # noqa: S608
        args: list[object] = [team_id, channel_id]
        if thread_ts is not None:
            args.append(thread_ts)
            query += f" AND thread_ts=${len(args)}"
        if skip:
            args.append(sorted(skip))
            query += f" AND id <> ALL(${len(args)}::bigint[])"
        row = await self.pool.fetchrow(query + " ORDER BY id LIMIT 1", *args)
        return pending_from_row(row) if row else None

    async def waiting_threads(self, team_id: str, channel_id: str) -> list[str]:
        rows = await self.pool.fetch(
            f"SELECT thread_ts FROM turns WHERE {UNFINISHED} AND team_id=$1 AND channel_id=$2"  # noqa: S608
            " GROUP BY thread_ts ORDER BY MIN(id)",
            team_id,
            channel_id,
        )
        return [str(r[0]) for r in rows]

    async def turns_ahead(
        self, team_id: str, channel_id: str, thread_ts: str, in_thread: bool, skip: Collection[int] = ()
    ) -> int:
        scope = " AND t.thread_ts=$3" if in_thread else ""
        count = await self.pool.fetchval(
            f"SELECT COUNT(*) FROM turns t WHERE t.{UNFINISHED} AND t.team_id=$1 AND t.channel_id=$2{scope}"  # noqa: S608
            f" AND t.id <> ALL($4::bigint[]) AND t.id < (SELECT MAX(id) FROM turns WHERE {UNFINISHED}"
            " AND team_id=$1 AND channel_id=$2 AND thread_ts=$3 AND id <> ALL($4::bigint[]))",
            team_id,
            channel_id,
            thread_ts,
            sorted(skip),
        )
        return int(count or 0)

    async def count_unfinished(self, team_id: str | None = None, channel_id: str | None = None) -> int:
        query, args = self._unfinished("COUNT(*)", team_id, channel_id)
        return int(await self.pool.fetchval(query, *args) or 0)

    async def thread_answered(self, team_id: str, channel_id: str, thread_ts: str, besides: str = "") -> bool:
        found = await self.pool.fetchval(
            f"SELECT true FROM turns WHERE team_id=$1 AND channel_id=$2 AND thread_ts=$3 AND message_ts<>$4"  # noqa: S608
            f" AND {ANSWERED_IN_THREAD} LIMIT 1",
            team_id,
            channel_id,
            thread_ts,
            besides,
        )
        return found is not None

    async def last_turn_in_thread(self, team_id: str, channel_id: str, thread_ts: str) -> int:
        last = await self.pool.fetchval(
            "SELECT max(id) FROM turns WHERE team_id=$1 AND channel_id=$2 AND thread_ts=$3",
            team_id,
            channel_id,
            thread_ts,
        )
        return int(last or 0)

    async def earlier_turns_in_thread(self, team_id: str, channel_id: str, thread_ts: str, turn_id: int) -> int:
        count = await self.pool.fetchval(
            "SELECT COUNT(*) + (SELECT COUNT(*) FROM pruned_threads WHERE team_id=$1 AND channel_id=$2"
            " AND thread_ts=$3) FROM turns t WHERE team_id=$1 AND channel_id=$2 AND thread_ts=$3 AND id<$4"
            " AND EXISTS (SELECT 1 FROM turn_steps s WHERE s.turn_id=t.id AND s.state='answered')",
            team_id,
            channel_id,
            thread_ts,
            turn_id,
        )
        return int(count or 0)

    async def record_signatures(self) -> None:
        """Nothing waits: `first_signature` writes each one at once, for every process sharing the database."""

    async def first_signature(self, signature: str, expires_at: float) -> bool:
        # An expired row is taken over by the upsert; the rest of the expired ones go now and then.
        async with bounded(self.pool, ACK_SECONDS) as conn:  # before Bolt sees the request: as accept_turn
            fresh = await conn.fetchval(
                "INSERT INTO seen_signatures (signature, expires_at) VALUES ($1,$2) ON CONFLICT (signature) DO UPDATE"
                " SET expires_at = EXCLUDED.expires_at WHERE seen_signatures.expires_at < $3 RETURNING true",
                signature,
                expires_at,
                time.time(),
            )
        self._signatures += 1
        if self._signatures % 100 == 0:
            await self.pool.execute("DELETE FROM seen_signatures WHERE expires_at < $1", time.time())
        return fresh is not None

    async def notice_once(self, team_id: str, channel_id: str, kind: str) -> bool:
        fresh = await self.pool.fetchval(
            "INSERT INTO notices (team_id, channel_id, kind) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING RETURNING true",
            team_id,
            channel_id,
            kind,
        )
        return fresh is not None

    # --- several processes -----------------------------------------------------------------------------
    # Lease times come from the database's clock, so processes on hosts whose clocks differ still agree. Each call is
    # bounded by its caller (leases.py), its connection dropped when the bound is reached: one gone silent would
    # otherwise hold the worker for good.

    async def claim_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        async with bounded(self.pool, None) as conn:
            won = await conn.fetchval(
                "INSERT INTO binding_leases (team_id, channel_id, owner, expires_at)"
                " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
                " ON CONFLICT (team_id, channel_id) DO UPDATE SET owner=excluded.owner, expires_at=excluded.expires_at"
                " WHERE binding_leases.owner=excluded.owner OR binding_leases.expires_at < now()"
                " RETURNING true",
                team_id,
                channel_id,
                owner,
                seconds,
            )
        return won is not None

    async def renew_binding(self, team_id: str, channel_id: str, owner: str, seconds: float) -> bool:
        async with bounded(self.pool, None) as conn:
            kept = await conn.fetchval(
                "UPDATE binding_leases SET expires_at = now() + make_interval(secs => $4)"
                " WHERE team_id=$1 AND channel_id=$2 AND owner=$3 RETURNING true",
                team_id,
                channel_id,
                owner,
                seconds,
            )
        return kept is not None

    async def release_binding(self, team_id: str, channel_id: str, owner: str) -> None:
        async with bounded(self.pool, None) as conn:
            await conn.execute(
                "DELETE FROM binding_leases WHERE team_id=$1 AND channel_id=$2 AND owner=$3", team_id, channel_id, owner
            )

    async def orphaned_bindings(self) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            f"SELECT t.team_id, t.channel_id FROM turns t WHERE t.{UNFINISHED}"  # noqa: S608
            " AND NOT EXISTS (SELECT 1 FROM binding_leases l WHERE l.team_id=t.team_id"
            " AND l.channel_id=t.channel_id AND l.expires_at >= now())"
            " GROUP BY t.team_id, t.channel_id ORDER BY MIN(t.id)"
        )
        return [(r[0], r[1]) for r in rows]
