"""FINISHED_TURNS_DAYS as a user runs it: `serve` on a SQLite file holding a months-old finished turn deletes it
(and what it left) a minute after start, keeps a recent one, and still answers a mention meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.domain import AgentReply, Turn
from bridge.store import open_store
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.slow  # waits for the first pass, a minute after start
TEAM, CHANNEL = "T0123ABCD", "C0123ABCD"  # the fakes' workspace and a channel in it


def seed(db: Path) -> None:
    """A turn that ended 100 days ago, with its step and outbox, and one that ended just now."""

    async def main() -> None:
        store = open_store(f"sqlite:///{db}")
        await store.open()
        try:
            for n in (1, 2):
                turn_id = await store.accept_turn(
                    Turn(TEAM, CHANNEL, f"{n}.000001", f"{n}.000001", "U1", f"old question {n}", f"Ev{n}"), f"o{n}"
                )
                assert turn_id is not None
                await store.step_answered(turn_id, "a", [AgentReply("alice", "an answer", "a")], None, None)
                await store.outbox_add(turn_id, "reply:a:0", "alice", "an answer")
                await store.finish_turn(turn_id, "done")
        finally:
            await store.close()

    asyncio.run(main())
    then = (datetime.now(UTC) - timedelta(days=100)).isoformat()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE turns SET created_at=?, updated_at=? WHERE message_ts='1.000001'", (then, then))


def texts(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [str(r[0]) for r in conn.execute("SELECT text FROM turns ORDER BY id")]


def test_serve_deletes_an_old_finished_turn_and_keeps_answering(tmp_path: Path) -> None:
    db = tmp_path / "bridge.db"
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, db, FINISHED_TURNS_DAYS="30")
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        seed(db)
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            assert bridge.mention("hi", CHANNEL)[1].status_code == 200
            deadline = time.monotonic() + 120
            while "old question 1" in texts(db) and time.monotonic() < deadline:
                time.sleep(1)
            left = texts(db)
        finally:
            bridge.stop()
        assert "old question 1" not in left, bridge.logs()
        assert "old question 2" in left and len(left) == 2
        assert "deleted finished turns older than 30 days turns=1" in bridge.logs()
        assert [p.args["text"] for p in slack.posts(CHANNEL)] == ["alice says hi"], "the mention was not answered"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM turn_steps").fetchone()[0] >= 1  # the recent turns' stay
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE text='an answer'").fetchone()[0] == 1
