"""A turn's record in PostgreSQL, as it runs: its steps, the transcript a bridge-run group shares, the outbox
of what the thread is owed and what was posted, and each thread's Letta conversations."""

from __future__ import annotations

import json
from datetime import datetime

from bridge.domain import AgentFailure, AgentReply, StepRecord
from bridge.store import base
from bridge.store.base import LIVE, SENDS_LEFT_GOING, THREAD_POSTS, OutboxItem, ThreadKey
from bridge.store.conversations import postgres_forget, postgres_get, postgres_put
from bridge.store.postgres_connection import PostgresConnection, clean, transcript_lock_key
from bridge.store.rows import step_outcome


class PostgresJournal(PostgresConnection):
    """The Store methods a running turn calls on each step (`TurnJournal`, `TurnOutbox`, the transcript)."""

    async def unseen(
        self, team_id: str, channel_id: str, agent_id: str, from_start: bool = False
    ) -> tuple[list[AgentReply], int]:
        async with self.pool.acquire() as db, db.transaction(isolation="repeatable_read", readonly=True):
            since = await db.fetchval(
                "SELECT seq FROM cursors WHERE team_id=$1 AND channel_id=$2 AND agent_id=$3",
                team_id,
                channel_id,
                agent_id,
            )
            top = await self._top_seq(db, team_id, channel_id)
            rows = await db.fetch(
                "SELECT agent_id, agent_name, text FROM transcript WHERE team_id=$1 AND channel_id=$2"
                " AND seq>$3 AND seq<=$4 AND agent_id<>$5 ORDER BY seq",
                team_id,
                channel_id,
                (0 if from_start else top) if since is None else int(since),
                top,
                agent_id,
            )
        return [AgentReply(r["agent_name"], r["text"], r["agent_id"]) for r in rows], top

    async def get_step(self, turn_id: int, step: str) -> StepRecord | None:
        row = await self.pool.fetchrow(
            "SELECT state, replies::text AS replies, failure::text AS failure, updated_at FROM turn_steps"
            " WHERE turn_id=$1 AND step=$2",
            turn_id,
            step,
        )
        if row is None:
            return None
        replies = tuple(AgentReply(**r) for r in json.loads(row["replies"]))
        failure = AgentFailure(**json.loads(row["failure"])) if row["failure"] else None
        return StepRecord(row["state"], replies, failure, row["updated_at"])

    async def step_sending(self, turn_id: int, step: str) -> None:
        await self.pool.execute(
            "INSERT INTO turn_steps (turn_id, step, state) VALUES ($1,$2,'sending')"
            " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, updated_at=now(), run_id=''",
            turn_id,
            step,
        )

    async def step_run(self, turn_id: int, step: str, run_id: str) -> None:
        await self.pool.execute(
            "UPDATE turn_steps SET run_id=$3 WHERE turn_id=$1 AND step=$2 AND state='sending'", turn_id, step, run_id
        )

    async def sending_steps(self, turn_id: int) -> dict[str, str]:
        rows = await self.pool.fetch(
            "SELECT step, run_id FROM turn_steps WHERE turn_id=$1 AND state='sending' ORDER BY step", turn_id
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def sends_left_going(self, since: datetime) -> bool:
        return bool(await self.pool.fetchval(SENDS_LEFT_GOING.format("$1", "$2"), since, since.timestamp()))

    async def steps_left_going(self, step: str, since: datetime) -> list[base.StepLeft]:
        rows = await self.pool.fetch(base.STEPS_LEFT_GOING, step, since)
        return [base.StepLeft(r["team_id"], r["channel_id"], r["otid"], r["updated_at"]) for r in rows]

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
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO turn_steps (turn_id, step, state, replies, failure) VALUES ($1,$2,$3,$4::jsonb,$5::jsonb)"
                " ON CONFLICT (turn_id, step) DO UPDATE SET state=excluded.state, replies=excluded.replies,"
                " failure=excluded.failure, updated_at=now()",
                turn_id,
                step,
                state,
                clean(encoded),
                clean(failed) if failed else None,
            )
            if seen is not None:
                team_id, channel_id, agent_id, upto = seen
                if replies:
                    # Agents asked at once (a broadcast, a supervisor's workers) answer at once: each number is
                    # the binding's last one plus one, so their transactions take it in turn.
                    await db.execute("SELECT pg_advisory_xact_lock($1)", transcript_lock_key(team_id, channel_id))
                for reply in replies:
                    await db.execute(
                        "INSERT INTO transcript (team_id, channel_id, seq, agent_id, agent_name, text)"
                        " SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5 FROM transcript"
                        " WHERE team_id=$1 AND channel_id=$2",
                        team_id,
                        channel_id,
                        agent_id,
                        reply.agent_name,
                        clean(reply.text),
                    )
                await db.execute(
                    "INSERT INTO cursors (team_id, channel_id, agent_id, seq) VALUES ($1,$2,$3,$4)"
                    " ON CONFLICT (team_id, channel_id, agent_id)"
                    " DO UPDATE SET seq=GREATEST(cursors.seq, excluded.seq)",
                    team_id,
                    channel_id,
                    agent_id,
                    upto,
                )

    async def outbox_add(self, turn_id: int, source: str, agent_name: str | None, text: str) -> int | None:
        added = await self.pool.fetchval(
            "INSERT INTO outbox (turn_id, source, agent_name, text) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING"
            " RETURNING id",
            turn_id,
            source,
            agent_name,
            clean(text),
        )
        return None if added is None else int(added)

    async def outbox_pending(self, turn_id: int) -> list[OutboxItem]:
        rows = await self.pool.fetch(
            "SELECT o.id, o.source, o.agent_name, o.text,"
            " COALESCE(array_agg(p.part) FILTER (WHERE p.part IS NOT NULL), '{}') AS parts"
            " FROM outbox o LEFT JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=$1 AND NOT o.done"
            " GROUP BY o.id ORDER BY o.id",
            turn_id,
        )
        return [
            OutboxItem(int(r["id"]), r["source"], r["agent_name"], r["text"], frozenset(int(p) for p in r["parts"]))
            for r in rows
        ]

    async def outbox_posted(self, outbox_id: int, part: int, ts: str, last: bool) -> None:
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO outbox_posts (outbox_id, part, ts) VALUES ($1,$2,$3)"
                " ON CONFLICT (outbox_id, part) DO UPDATE SET ts=excluded.ts",
                outbox_id,
                part,
                ts,
            )
            if last:
                await db.execute("UPDATE outbox SET done=true WHERE id=$1", outbox_id)

    async def live_started(self, turn_id: int, key: str, agent_name: str, ts: str) -> None:
        async with self._tx() as db:
            outbox_id = await db.fetchval(
                "INSERT INTO outbox (turn_id, source, agent_name, text, done) VALUES ($1,$2,$3,'',true)"
                " ON CONFLICT DO NOTHING RETURNING id",
                turn_id,
                LIVE + key,
                agent_name,
            )
            if outbox_id is not None:
                await db.execute("INSERT INTO outbox_posts (outbox_id, part, ts) VALUES ($1,0,$2)", outbox_id, ts)

    async def live_ts(self, turn_id: int, key: str) -> str | None:
        found = await self.pool.fetchval(
            "SELECT p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=$1 AND o.source=$2",
            turn_id,
            LIVE + key,
        )
        return None if found is None else str(found)

    async def live_unreplaced(self, turn_id: int) -> list[tuple[str, str]]:
        rows = await self.pool.fetch(
            "SELECT o.source, p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=$1"
            " AND o.source LIKE 'live:%' AND p.ts NOT IN (SELECT q.ts FROM outbox r JOIN outbox_posts q"
            " ON q.outbox_id=r.id WHERE r.turn_id=$1 AND r.source NOT LIKE 'live:%') ORDER BY o.id",
            turn_id,
        )
        return [(str(r[0])[len(LIVE) :], str(r[1])) for r in rows]

    async def posts_of(self, turn_id: int) -> list[tuple[str | None, str]]:
        """(agent name, ts) of everything posted for the turn, in order (a draft counts as its reply)."""
        rows = await self.pool.fetch(
            "SELECT o.agent_name, p.ts FROM outbox o JOIN outbox_posts p ON p.outbox_id=o.id WHERE o.turn_id=$1"
            " AND o.source NOT LIKE 'live:%' ORDER BY o.id, p.part",
            turn_id,
        )
        return [(r[0], r[1]) for r in rows]

    async def thread_posts(self, turn_id: int) -> set[str]:
        return {str(r[0]) for r in await self.pool.fetch(THREAD_POSTS, turn_id) if r[0]}

    async def thread_replies(self, team_id: str, channel_id: str, thread_ts: str) -> dict[str, tuple[str, str]]:
        rows = await self.pool.fetch(
            "SELECT p.ts, o.agent_name, o.text FROM turns t JOIN outbox o ON o.turn_id=t.id"
            " JOIN outbox_posts p ON p.outbox_id=o.id WHERE t.team_id=$1 AND t.channel_id=$2 AND t.thread_ts=$3"
            " AND o.agent_name IS NOT NULL AND o.source LIKE 'reply:%' AND p.part=0",
            team_id, channel_id, thread_ts,
        )
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}

    async def conversation(self, thread: ThreadKey, agent_id: str) -> str | None:
        return await postgres_get(self.pool, (*thread, agent_id))

    async def put_conversation(
        self, thread: ThreadKey, agent_id: str, conversation_id: str, replacing: str | None = None
    ) -> str:
        return await postgres_put(self.pool, (*thread, agent_id), conversation_id, replacing)

    async def forget_conversation(self, thread: ThreadKey, agent_id: str, conversation_id: str) -> None:
        await postgres_forget(self.pool, (*thread, agent_id), conversation_id)
