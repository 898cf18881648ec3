"""The tables, as each backend's migrations: the SQLite store's by PRAGMA user_version, the Postgres store's by
schema_version. Version numbers match across backends for the same tables."""

from __future__ import annotations

from bridge.store.approvals import POSTGRES_V8, SQLITE_V8
from bridge.store.attachments import POSTGRES_V10, SQLITE_V10
from bridge.store.base import UNFINISHED, UNSETTLED_STEP, StoreError
from bridge.store.conversations import POSTGRES_V3, SQLITE_V3
from bridge.store.feedback import POSTGRES_V6, SQLITE_V6
from bridge.store.installations import POSTGRES_V5, SQLITE_V5
from bridge.store.queue_notices import POSTGRES_V19, SQLITE_V19
from bridge.store.turn_binding import POSTGRES_V17, SQLITE_V17

# Schema v7: the queue read by indexes, so that accepting a mention, finding the next turn and counting what
# waits cost the same with 10 or 10,000 turns queued. The partial indexes hold unfinished turns only; their WHERE
# must be written exactly so in a query for SQLite to use them (store.base.UNFINISHED, as v11 makes them again).
_V7_COMMON = """
    CREATE INDEX IF NOT EXISTS turns_unfinished_thread ON turns (team_id, channel_id, thread_ts, id)
        WHERE status IN ('received', 'running');
    CREATE INDEX IF NOT EXISTS turns_thread ON turns (team_id, channel_id, thread_ts, id);
"""
SQLITE_V7 = (
    """
    CREATE INDEX IF NOT EXISTS turns_unfinished ON turns (team_id, channel_id, id)
        WHERE status IN ('received', 'running');
"""
    + _V7_COMMON
)
POSTGRES_V7 = _V7_COMMON  # Postgres has had turns_unfinished since its first migration

# Schema v9: a bridge-defined group (issue 15): a binding of agents may name its own manager (supervisor, dynamic)
# and turn limits, where the server has no group record to hold them (the App Server, Letta Cloud, 0.16.5+).
_V9_COLUMNS = ("manager_id TEXT", "manager_name TEXT", "max_turns INTEGER", "termination_token TEXT")
SQLITE_V9 = "".join(f"ALTER TABLE bindings ADD COLUMN {column};\n" for column in _V9_COLUMNS)
POSTGRES_V9 = "".join(f"ALTER TABLE bindings ADD COLUMN IF NOT EXISTS {column};\n" for column in _V9_COLUMNS)

# Schema v11: a running turn that is stopped is `stopping` until its stop has ended (its working signs taken back,
# by its own process or, when that one died, by the one taking its binding over), and counts as unfinished so
# that the sweep finds it: the queue's partial indexes are made again with the new WHERE (the same on both).
V11 = f"""
    DROP INDEX IF EXISTS turns_unfinished;
    DROP INDEX IF EXISTS turns_unfinished_thread;
    CREATE INDEX turns_unfinished ON turns (team_id, channel_id, id) WHERE {UNFINISHED};
    CREATE INDEX turns_unfinished_thread ON turns (team_id, channel_id, thread_ts, id) WHERE {UNFINISHED};
"""

# Schema v14: the journal's sends nobody saw end, found at start without reading every step ever journaled.
V14 = f"CREATE INDEX turn_steps_unsettled ON turn_steps (updated_at) WHERE {UNSETTLED_STEP};"

# Schema v15: each transcript row's time, so that retention can delete the rows every agent has seen once they are
# older than FINISHED_TURNS_DAYS (retention.py). Rows from before it count from the upgrade: their age is unknown.
# SQLite cannot add a column whose default is the time, so the rows already there are given it by an UPDATE.
SQLITE_V15 = """
    ALTER TABLE transcript ADD COLUMN at TEXT NOT NULL DEFAULT '';
    UPDATE transcript SET at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now');
    CREATE INDEX transcript_age ON transcript (at, team_id, channel_id, seq);
"""
POSTGRES_V15 = """
    ALTER TABLE transcript ADD COLUMN IF NOT EXISTS at TIMESTAMPTZ NOT NULL DEFAULT now();
    CREATE INDEX IF NOT EXISTS transcript_age ON transcript (at, team_id, channel_id, seq);
"""

# Schema v16: the threads whose turns that reached the agents retention has deleted (retention.py), so that a new
# mention there is still a follow-up to what the agents were told, not a first one that brings the thread's
# earlier messages again (Store.earlier_turns_in_thread). One row per thread, kept as the conversations are.
V16 = """
    CREATE TABLE IF NOT EXISTS pruned_threads (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, thread_ts TEXT NOT NULL,
        PRIMARY KEY (team_id, channel_id, thread_ts)
    );
"""

# Schema v18: each history entry's pattern with its manager and limits (pattern_words.how), so that /letta status
# tells apart two bindings of the same agents (a supervisor managed by one agent, then a dynamic group managed by
# another). Entries from before it have '' and are said with their ids alone, as before.
SQLITE_V18 = "ALTER TABLE binding_history ADD COLUMN pattern TEXT NOT NULL DEFAULT '';"
POSTGRES_V18 = "ALTER TABLE binding_history ADD COLUMN IF NOT EXISTS pattern TEXT NOT NULL DEFAULT '';"

# Schema v20: the time of the newest edit a waiting turn took (slack_changes.edit_order; Slack promises no order,
# and retries an event with the payload it first had), so that an older edit delivered later changes nothing; ''
# for a turn never edited.
SQLITE_V20 = "ALTER TABLE turns ADD COLUMN edited_ts TEXT NOT NULL DEFAULT '';"
POSTGRES_V20 = "ALTER TABLE turns ADD COLUMN IF NOT EXISTS edited_ts TEXT NOT NULL DEFAULT '';"

# Schema v21: the Letta run a step's send reported (its first event's run_id), so that a process taking a killed
# one's turn over cancels exactly that run where nothing else finds it (a server with conversations, no Redis);
# '' until reported, and again when the step is sent anew.
SQLITE_V21 = "ALTER TABLE turn_steps ADD COLUMN run_id TEXT NOT NULL DEFAULT '';"
POSTGRES_V21 = "ALTER TABLE turn_steps ADD COLUMN IF NOT EXISTS run_id TEXT NOT NULL DEFAULT '';"

SQLITE_MIGRATIONS: list[str] = [
    """
    CREATE TABLE bindings (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL,
        kind TEXT NOT NULL, group_id TEXT, agents TEXT NOT NULL,
        manager_type TEXT, description TEXT NOT NULL DEFAULT '',
        runner TEXT NOT NULL DEFAULT 'auto', bound_by TEXT NOT NULL DEFAULT '', bound_at TEXT NOT NULL,
        PRIMARY KEY (team_id, channel_id)
    );
    CREATE TABLE binding_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, runner TEXT NOT NULL, actor TEXT NOT NULL, at TEXT NOT NULL
    );
    CREATE TABLE seen_events (event_id TEXT PRIMARY KEY, at TEXT NOT NULL);
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, message_ts TEXT NOT NULL, thread_ts TEXT NOT NULL,
        user_id TEXT NOT NULL, text TEXT NOT NULL, otid TEXT NOT NULL, event_id TEXT NOT NULL,
        status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        UNIQUE (team_id, channel_id, message_ts)
    );
    CREATE INDEX turns_status ON turns (status);
    CREATE TABLE posts (
        turn_id INTEGER NOT NULL, seq INTEGER NOT NULL, agent_name TEXT NOT NULL, ts TEXT NOT NULL,
        PRIMARY KEY (turn_id, seq)
    );
    CREATE TABLE transcript (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, seq INTEGER NOT NULL,
        agent_id TEXT NOT NULL, agent_name TEXT NOT NULL, text TEXT NOT NULL,
        PRIMARY KEY (team_id, channel_id, seq)
    );
    CREATE TABLE cursors (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, agent_id TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (team_id, channel_id, agent_id)
    );
    CREATE TABLE notices (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (team_id, channel_id, kind)
    );
    """,
    """
    DROP TABLE posts;
    CREATE TABLE turn_steps (
        turn_id INTEGER NOT NULL, step TEXT NOT NULL, state TEXT NOT NULL,
        replies TEXT NOT NULL DEFAULT '[]', failure TEXT, updated_at TEXT NOT NULL,
        PRIMARY KEY (turn_id, step)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        turn_id INTEGER NOT NULL, source TEXT NOT NULL, agent_name TEXT, text TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        UNIQUE (turn_id, source)
    );
    CREATE TABLE outbox_posts (
        outbox_id INTEGER NOT NULL, part INTEGER NOT NULL, ts TEXT NOT NULL,
        PRIMARY KEY (outbox_id, part)
    );
    """,
    SQLITE_V3,
    """
    CREATE TABLE IF NOT EXISTS seen_signatures (signature TEXT PRIMARY KEY, expires_at REAL NOT NULL);
    CREATE INDEX IF NOT EXISTS seen_signatures_expiry ON seen_signatures (expires_at);
    """,
    SQLITE_V5,  # many workspaces: installations, OAuth states, each workspace's settings (installations.py)
    SQLITE_V6,  # feedback on agents' replies (feedback.py)
    SQLITE_V7,  # the queue read by indexes (above)
    SQLITE_V8,  # tool calls waiting for a person's approval, and the decision (approvals.py)
    SQLITE_V9,  # a bridge-defined group's manager and limits (above)
    SQLITE_V10,  # a turn's shared files and what they became for the agents (attachments.py)
    V11,  # `stopping` turns are unfinished (above)
    "",  # Postgres's process heartbeats (below): SQLite means one process
    "",  # Postgres's agent sends in flight (below)
    V14,
    SQLITE_V15,  # each transcript row's time (above)
    V16,  # the threads retention deleted answered turns of (above)
    SQLITE_V17,  # the binding a turn started with (turn_binding.py)
    SQLITE_V18,  # each history entry's pattern (above)
    SQLITE_V19,  # each waiting thread's queue notice (queue_notices.py)
    SQLITE_V20,  # the time of a waiting turn's newest edit (above)
    SQLITE_V21,  # the run a step's send reported (above)
]


POSTGRES_MIGRATIONS: dict[int, str] = {
    2: """
    CREATE TABLE bindings (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL,
        kind TEXT NOT NULL, group_id TEXT, agents JSONB NOT NULL,
        manager_type TEXT, description TEXT NOT NULL DEFAULT '',
        runner TEXT NOT NULL DEFAULT 'auto', bound_by TEXT NOT NULL DEFAULT '', bound_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (team_id, channel_id)
    );
    CREATE TABLE binding_history (
        id BIGSERIAL PRIMARY KEY,
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT NOT NULL, runner TEXT NOT NULL, actor TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX binding_history_channel ON binding_history (team_id, channel_id, id);
    CREATE TABLE seen_events (event_id TEXT PRIMARY KEY, at TIMESTAMPTZ NOT NULL DEFAULT now());
    CREATE TABLE turns (
        id BIGSERIAL PRIMARY KEY,
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, message_ts TEXT NOT NULL, thread_ts TEXT NOT NULL,
        user_id TEXT NOT NULL, text TEXT NOT NULL, otid TEXT NOT NULL, event_id TEXT NOT NULL,
        status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(), updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (team_id, channel_id, message_ts)
    );
    CREATE INDEX turns_unfinished ON turns (team_id, channel_id, id) WHERE status IN ('received', 'running');
    CREATE TABLE transcript (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, seq BIGINT NOT NULL,
        agent_id TEXT NOT NULL, agent_name TEXT NOT NULL, text TEXT NOT NULL,
        PRIMARY KEY (team_id, channel_id, seq)
    );
    CREATE TABLE cursors (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, agent_id TEXT NOT NULL, seq BIGINT NOT NULL,
        PRIMARY KEY (team_id, channel_id, agent_id)
    );
    CREATE TABLE notices (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, kind TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (team_id, channel_id, kind)
    );
    CREATE TABLE turn_steps (
        turn_id BIGINT NOT NULL, step TEXT NOT NULL, state TEXT NOT NULL,
        replies JSONB NOT NULL DEFAULT '[]', failure JSONB, updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (turn_id, step)
    );
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        turn_id BIGINT NOT NULL, source TEXT NOT NULL, agent_name TEXT, text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT false,
        UNIQUE (turn_id, source)
    );
    CREATE TABLE outbox_posts (
        outbox_id BIGINT NOT NULL, part INTEGER NOT NULL, ts TEXT NOT NULL,
        PRIMARY KEY (outbox_id, part)
    );
    CREATE TABLE binding_leases (
        team_id TEXT NOT NULL, channel_id TEXT NOT NULL, owner TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (team_id, channel_id)
    );
    """,
    3: POSTGRES_V3,
    # Slack request signatures seen within their replay window (slack/gate.py), shared by every process.
    4: """
    CREATE TABLE IF NOT EXISTS seen_signatures (signature TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX IF NOT EXISTS seen_signatures_expiry ON seen_signatures (expires_at);
    """,
    5: POSTGRES_V5,
    6: POSTGRES_V6,
    7: POSTGRES_V7,
    8: POSTGRES_V8,
    9: POSTGRES_V9,
    10: POSTGRES_V10,
    11: V11,
    # Each process's heartbeat, by the database's clock: an agent lock held by a session of a process whose
    # heartbeat ran out (frozen, or its host gone with its connections open) is taken from it (postgres_connection.py).
    12: "CREATE TABLE bridge_processes (owner TEXT PRIMARY KEY, expires_at TIMESTAMPTZ NOT NULL);",
    # Each agent send in flight, by agent lock key: a database restart frees the advisory lock, not the send
    # (postgres_locks.py).
    13: "CREATE TABLE agent_sends (key BIGINT PRIMARY KEY, owner TEXT NOT NULL, token TEXT NOT NULL);",
    14: V14,
    15: POSTGRES_V15,
    16: V16,
    17: POSTGRES_V17,
    18: POSTGRES_V18,
    19: POSTGRES_V19,
    20: POSTGRES_V20,
    21: POSTGRES_V21,
}

LATEST = len(SQLITE_MIGRATIONS)
assert max(POSTGRES_MIGRATIONS) == LATEST, "both backends reach the same version"


def newer_schema(version: int, where: str) -> StoreError:
    """A database a later bridge has migrated: its tables may mean what this code does not know, so it is left as
    it is rather than run on (a rollback to an older release, an older checkout pointed at production)."""
    return StoreError(
        f"the database {where} is at schema v{version}, newer than this bridge's v{LATEST}: it was upgraded by a "
        "newer version of the bridge, so run that version (or a later one) against it; it was left as it was"
    )
