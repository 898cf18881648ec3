"""Databases as an older bridge left them: the schema made by its migrations (schema.py's lists cut at version N,
applied as the older code's `_migrate` did) and rows written with that version's columns, so that an upgrade is
tested on data, not on empty tables. Every table the older version had gets representative rows: bindings and their
history, a finished turn, a running one with its journal steps and outbox, a queued one, conversations, seen
signatures, installations, feedback, approvals, a turn's files."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bridge.store.database_url import sqlite_path
from bridge.store.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
FAR = 4_000_000_000.0  # a signature still within its window
CREW = [{"id": "agent-a", "name": "alice"}, {"id": "agent-b", "name": "bob"}]
ALICE_SAID = [{"agent_name": "alice", "text": "hi from alice", "agent_id": "agent-a", "step": "agent-a"}]
FILES = [{"id": "F1", "name": "notes.txt", "mimetype": "text/plain", "size": 5, "url": "https://files.slack.com/x"}]


@dataclass
class OldRows:
    """The ids the older version gave its rows (the store numbers them itself)."""

    done: int = 0
    running: int = 0
    queued: int = 0
    other: int = 0
    approval: int = 0


Insert = Callable[[str, tuple[Any, ...]], Awaitable[int | None]]


async def fill(version: int, insert: Insert, postgres: bool) -> OldRows:
    """Rows for every table the schema at `version` has, written with that version's columns."""

    def when(value: datetime) -> Any:
        return value if postgres else value.isoformat()

    rows = OldRows()
    binding = (
        "INSERT INTO bindings (team_id, channel_id, kind, group_id, agents, manager_type, description, runner,"
        " bound_by, bound_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
    )
    await insert(
        binding, ("T1", "C1", "group", "group-1", json.dumps(CREW), "round_robin", "crew", "auto", "U1", when(AT))
    )
    await insert(binding, ("T1", "C2", "agents", None, json.dumps(CREW[:1]), None, "", "bridge", "U2", when(AT)))
    for channel in ("C1", "C2"):
        await insert(
            "INSERT INTO binding_history (team_id, channel_id, action, target, runner, actor, at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7)",
            ("T1", channel, "connect", "group-1", "auto", "U1", when(AT)),
        )
    turn = (
        "INSERT INTO turns (team_id, channel_id, message_ts, thread_ts, user_id, text, otid, event_id, status,"
        " created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id"
    )
    for event, (attr, channel, ts, thread, status) in enumerate(
        [
            ("done", "C1", "1.000001", "1.000001", "done"),
            ("running", "C1", "2.000001", "2.000001", "running"),
            ("queued", "C1", "3.000001", "2.000001", "received"),
            ("other", "C2", "4.000001", "4.000001", "received"),
        ]
    ):
        await insert("INSERT INTO seen_events (event_id, at) VALUES ($1,$2)", (f"Ev{event}", when(AT)))
        otid = f"00000000-0000-4000-8000-00000000000{event}"
        made = await insert(
            turn, ("T1", channel, ts, thread, "U1", f"question {event}", otid, f"Ev{event}", status, when(AT), when(AT))
        )
        setattr(rows, attr, made)
    said = ("T1", "C1", 1, "agent-a", "alice", "hi from alice")
    if version >= 15:  # each row's time
        await insert(
            "INSERT INTO transcript (team_id, channel_id, seq, agent_id, agent_name, text, at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7)",
            (*said, when(AT)),
        )
    else:
        await insert(
            "INSERT INTO transcript (team_id, channel_id, seq, agent_id, agent_name, text) VALUES ($1,$2,$3,$4,$5,$6)",
            said,
        )
    await insert(
        "INSERT INTO cursors (team_id, channel_id, agent_id, seq) VALUES ($1,$2,$3,$4)", ("T1", "C1", "agent-a", 1)
    )
    await insert(
        "INSERT INTO notices (team_id, channel_id, kind, at) VALUES ($1,$2,$3,$4)",
        ("T1", "C1", "route_missing", when(AT)),
    )
    if version == 1:  # v2 replaced it with the journal and the outbox
        await insert(
            "INSERT INTO posts (turn_id, seq, agent_name, ts) VALUES ($1,$2,$3,$4)", (rows.done, 0, "alice", "1.1")
        )
        return rows
    step = "INSERT INTO turn_steps (turn_id, step, state, replies, updated_at) VALUES ($1,$2,$3,$4,$5)"
    await insert(step, (rows.running, "agent-a", "answered", json.dumps(ALICE_SAID), when(AT)))
    await insert(step, (rows.running, "agent-b", "sending", "[]", when(AT)))
    outbox = "INSERT INTO outbox (turn_id, source, agent_name, text, done) VALUES ($1,$2,$3,$4,$5) RETURNING id"
    posted = await insert(outbox, (rows.done, "agent-a", "alice", "done long ago", True if postgres else 1))
    await insert("INSERT INTO outbox_posts (outbox_id, part, ts) VALUES ($1,$2,$3)", (posted, 0, "1.000002"))
    owed = await insert(outbox, (rows.running, "agent-a", "alice", "hi from alice", False if postgres else 0))
    await insert("INSERT INTO outbox_posts (outbox_id, part, ts) VALUES ($1,$2,$3)", (owed, 0, "2.000002"))
    if version >= 3:
        await insert(
            "INSERT INTO conversations (team_id, channel_id, thread_ts, agent_id, conversation_id, created_at)"
            " VALUES ($1,$2,$3,$4,$5,$6)",
            ("T1", "C1", "2.000001", "agent-a", "conv-a", when(AT)),
        )
    if version >= 4:
        await insert("INSERT INTO seen_signatures (signature, expires_at) VALUES ($1,$2)", ("v0=seen", FAR))
    if version >= 5:
        await insert(
            "INSERT INTO slack_installations (enterprise_id, team_id, is_enterprise_install, secret,"
            " installed_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6)",
            ("", "T1", 0, "sealed", 1.0, 1.0),
        )
        await insert("INSERT INTO slack_workspaces (team_id, team_name) VALUES ($1,$2)", ("T1", "Acme"))
        await insert("INSERT INTO bridge_secrets (name, value) VALUES ($1,$2)", ("key", "sealed"))
        await insert("INSERT INTO oauth_states (state, expires_at) VALUES ($1,$2)", ("state-1", FAR))
    if version >= 6:
        await insert(
            "INSERT INTO feedback (turn_id, reply, user_id, team_id, channel_id, agent_name, vote,"
            " created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
            (rows.done, "agent-a:0", "U1", "T1", "C1", "alice", "up", 1.0, 1.0),
        )
    if version >= 8:
        rows.approval = (
            await insert(
                "INSERT INTO approvals (turn_id, step, tool_call_id, team_id, channel_id, thread_ts, agent_id,"
                " agent_name, request_id, tool_name, arguments, asked_by, card_ts, created_at)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) RETURNING id",
                (
                    rows.running,
                    "agent-b",
                    "call-1",
                    "T1",
                    "C1",
                    "2.000001",
                    "agent-b",
                    "bob",
                    "req-1",
                    "rm",
                    "{}",
                    "U1",
                    "2.000003",
                    1.0,
                ),
            )
            or 0
        )
    if version >= 9:
        await insert(
            binding.replace("bound_at)", "bound_at, manager_id, manager_name, max_turns, termination_token)").replace(
                "$10)", "$10,$11,$12,$13,$14)"
            ),
            (
                "T1",
                "C3",
                "agents",
                None,
                json.dumps(CREW),
                "dynamic",
                "",
                "bridge",
                "U3",
                when(AT),
                "agent-boss",
                "boss",
                3,
                "DONE",
            ),
        )
    if version >= 10:
        await insert("UPDATE turns SET files=$1 WHERE id=$2", (json.dumps(FILES), rows.other))
        await insert("INSERT INTO turn_attachments (turn_id, body) VALUES ($1,$2)", (rows.other, "{}"))
    if version >= 16:
        await insert(
            "INSERT INTO pruned_threads (team_id, channel_id, thread_ts) VALUES ($1,$2,$3)", ("T1", "C1", "8.000001")
        )
    return rows


async def old_sqlite(url: str, version: int) -> OldRows:
    """A SQLite file at schema `version` (PRAGMA user_version), with rows."""
    with closing(sqlite3.connect(sqlite_path(url), isolation_level=None)) as db:
        db.execute("BEGIN")
        for script in SQLITE_MIGRATIONS[:version]:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
        db.execute(f"PRAGMA user_version={version}")

        async def insert(query: str, args: tuple[Any, ...]) -> int | None:
            cursor = db.execute(re.sub(r"\$(\d+)", r"?\1", query), args)
            row = cursor.fetchone() if "RETURNING" in query else None
            return int(row[0]) if row else None

        rows = await fill(version, insert, postgres=False)
        db.execute("COMMIT")
    return rows


async def old_postgres(url: str, version: int) -> OldRows:
    """A Postgres database at schema `version` (its schema_version rows), with rows."""
    db = await asyncpg.connect(url)
    try:
        async with db.transaction():
            await db.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for number in sorted(v for v in POSTGRES_MIGRATIONS if v <= version):
                await db.execute(POSTGRES_MIGRATIONS[number])
                await db.execute("INSERT INTO schema_version (version) VALUES ($1)", number)

            async def insert(query: str, args: tuple[Any, ...]) -> int | None:
                if "RETURNING" in query:
                    return int(await db.fetchval(query, *args))
                await db.execute(query, *args)
                return None

            return await fill(version, insert, postgres=True)
    finally:
        await db.close()


async def old_database(url: str, version: int) -> OldRows:
    return await (old_sqlite if url.startswith("sqlite:") else old_postgres)(url, version)
