"""A turn's record in SQLite, as it runs: its steps (what was sent to each agent and what came back), the
transcript a bridge-run group shares, the outbox of what the thread is owed and what was posted, and each
thread's Letta conversations."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from bridge.domain import AgentFailure, AgentReply, StepRecord
from bridge.store import base
from bridge.store.base import LIVE, SENDS_LEFT_GOING, THREAD_POSTS, OutboxItem, ThreadKey
from bridge.store.rows import step_outcome
from bridge.store.sqlite_connection import SqliteConnection, in_thread, now_text, top_seq


class SqliteJournal(SqliteConnection):
    """The Store methods a running turn calls on each step (`TurnJournal`, `TurnOutbox`, the transcript)."""

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
                top = top_seq(conn, team_id, channel_id)
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
                return await in_thread(self.db, read)
        return await in_thread(self._reader, read)

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
                " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at,"
                " run_id=''",
                (turn_id, step, "sending", now_text()),
            )
        )

    async def step_run(self, turn_id: int, step: str, run_id: str) -> None:
        await self._transact(
            lambda conn: conn.execute(
                "UPDATE turn_steps SET run_id=? WHERE turn_id=? AND step=? AND state='sending'", (run_id, turn_id, step)
            )
        )

    async def sending_steps(self, turn_id: int) -> dict[str, str]:
        rows = await self._all(
            "SELECT step, run_id FROM turn_steps WHERE turn_id=? AND state='sending' ORDER BY step", (turn_id,)
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def sends_left_going(self, since: datetime) -> bool:
        row = await self._one(
            SENDS_LEFT_GOING.format("?", "?"),
            (since.astimezone(UTC).isoformat(), since.timestamp()),
        )
        return row is not None and bool(row[0])

    async def steps_left_going(self, step: str, since: datetime) -> list[base.StepLeft]:
        rows = await self._all(base.STEPS_LEFT_GOING.replace("$", "?"), (step, since.astimezone(UTC).isoformat()))
        return [base.StepLeft(str(r[0]), str(r[1]), str(r[2]), datetime.fromisoformat(str(r[3]))) for r in rows]

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
                (turn_id, step, state, encoded, failed, now_text()),
            )
            if seen is not None:
                team_id, channel_id, agent_id, upto = seen
                for reply in replies:
                    seq = top_seq(conn, team_id, channel_id) + 1
                    conn.execute(
                        "INSERT INTO transcript (team_id, channel_id, seq, agent_id, agent_name, text, at)"
                        " VALUES (?,?,?,?,?,?,?)",
                        (team_id, channel_id, seq, agent_id, reply.agent_name, reply.text, now_text()),
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

    async def live_unreplaced(self, turn_id: int) -> list[tuple[str, str]]:
        rows = await self._all(
            "SELECT o.source, p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=?"
            " AND o.source LIKE 'live:%' AND p.ts NOT IN (SELECT q.ts FROM outbox r JOIN outbox_posts q"
            " ON q.outbox_id=r.id WHERE r.turn_id=? AND r.source NOT LIKE 'live:%') ORDER BY o.id",
            (turn_id, turn_id),
        )
        return [(str(r[0])[len(LIVE) :], str(r[1])) for r in rows]

    async def posts_of(self, turn_id: int) -> list[tuple[str | None, str]]:
        """(agent name, ts) of everything posted for the turn, in order (a draft counts as its reply)."""
        rows = await self._all(
            "SELECT o.agent_name, p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=?"
            " AND o.source NOT LIKE 'live:%' ORDER BY o.id, p.part",
            (turn_id,),
        )
        return [(r[0], r[1]) for r in rows]

    async def thread_posts(self, turn_id: int) -> set[str]:
        rows = await self._all(THREAD_POSTS.replace("$1", "?"), (turn_id,))
        return {str(r[0]) for r in rows if r[0]}

    async def thread_replies(self, team_id: str, channel_id: str, thread_ts: str) -> dict[str, tuple[str, str]]:
        rows = await self._all(
            "SELECT p.ts, o.agent_name, o.text FROM turns t JOIN outbox o ON o.turn_id=t.id"
            " JOIN outbox_posts p ON p.outbox_id=o.id WHERE t.team_id=? AND t.channel_id=? AND t.thread_ts=?"
            " AND o.agent_name IS NOT NULL AND o.source LIKE 'reply:%' AND p.part=0",
            (team_id, channel_id, thread_ts),
        )
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}

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
                (*thread, agent_id, conversation_id, now_text()),
            )
        return await self.conversation(thread, agent_id) or conversation_id

    async def forget_conversation(self, thread: ThreadKey, agent_id: str, conversation_id: str) -> None:
        async with self._write() as db:
            await db.execute(
                "DELETE FROM conversations WHERE team_id=? AND channel_id=? AND thread_ts=? AND agent_id=?"
                " AND conversation_id=?",
                (*thread, agent_id, conversation_id),
            )
