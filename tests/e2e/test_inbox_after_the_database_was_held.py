"""The bridge's SQLite database held by another process for a while (a `sqlite3` shell left in a transaction,
docs/operations.md's own example for /readyz; a backup taking the write lock): a mention acknowledged meanwhile
waits in the events inbox. Once the database is free again, a later mention in the same channel must be
answered at once, not held behind the first one's next attempt a minute later (Slack's retry schedule, which
Slack itself would never make a *later* event wait on)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

CHANNEL = "C0LOCKED1"


def test_a_mention_after_the_database_is_free_again_is_answered_at_once(
    fresh: tuple[FakeSlack, FakeLetta, Path],
) -> None:
    """revFG: the first mention, parked while the lock was held, was tried again on Slack's schedule (+60 s, then
    +300 s), and the second waited behind it; each try logged Bolt's whole traceback. Now the parked one goes as
    soon as the database answers, the second right after it, and each failed try is one line."""
    slack, letta, tmp = fresh
    alice = letta.add_agent("alice")
    slack.add_channel(CHANNEL, "locked")
    db = tmp / "bridge.db"
    env = base_env(slack.api_url, letta.base_url, db)
    assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    held, release = threading.Event(), threading.Event()

    def shell_left_in_a_transaction() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(60)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=shell_left_in_a_transaction)
    holder.start()
    try:
        held.wait(5)
        first, answer = bridge.mention("asked while the database was held", CHANNEL)
        assert answer.status_code == 200  # the ingress recorded it in the inbox
        time.sleep(14)  # two attempts fail (each waits out the 5 s busy timeout)
        release.set()
        holder.join()
        time.sleep(1)
        second, _ = bridge.mention("asked once the database is free", CHANNEL)
        sent = time.monotonic()
        try:
            slack.wait_for(lambda: any(p.args.get("username") for p in slack.posts(CHANNEL, second["ts"])), 20)
        except AssertionError:
            waited = time.monotonic() - sent
            raise AssertionError(
                f"no answer {waited:.0f} s after a mention made with the database free\n{bridge.logs()}"
            ) from None
        assert any(p.args.get("username") for p in slack.posts(CHANNEL, first["ts"]))  # the parked one too
        logs = bridge.logs()
        assert "Traceback" not in logs and "the database is busy (database is locked)" in logs
        assert logs.count("the database does not answer: acknowledged events wait in the inbox") == 1
    finally:
        release.set()
        bridge.stop()
