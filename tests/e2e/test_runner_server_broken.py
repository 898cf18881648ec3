"""`--runner server` on Letta 0.12.0 to 0.16.4, where every group send answers 500 (chooser.group_send_broken): refused
at connect in one sentence, never saved; a binding that has it (saved before Letta was upgraded) is not kept by a
Slack connect. Found by a review (revAZ): it was saved, every mention then failed with "Ask again in a moment", and
`/letta connect` of the same group kept the runner, so Slack could not put the channel right."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.harness import run_cli
from tests.e2e.slash import slash_world


def _runner(db: Path, channel: str) -> list[tuple[str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT runner FROM bindings WHERE channel_id=?", (channel,)).fetchall()


def test_runner_server_where_every_group_send_fails_is_refused_not_saved(tmp_path: Path) -> None:
    with slash_world(tmp_path, version="0.16.4") as sw:
        a, b = sw.letta.add_agent("alice"), sw.letta.add_agent("bob")
        group = sw.letta.add_group([a, b], manager_type="round_robin", description="Crew")
        made = run_cli(sw.env, "channels", "connect", "C0SERVER1", group, "--runner", "server")
        assert made.returncode != 0 and _runner(sw.db, "C0SERVER1") == [], (made.returncode, made.stdout)
        assert "Letta 0.16.4 answers every group send with an error" in made.stdout + made.stderr


def test_a_slack_connect_does_not_keep_a_runner_that_cannot_work(tmp_path: Path) -> None:
    with slash_world(tmp_path, version="0.16.4") as sw:
        a, b = sw.letta.add_agent("alice"), sw.letta.add_agent("bob")
        group = sw.letta.add_group([a, b], manager_type="round_robin", description="Crew")
        assert run_cli(sw.env, "channels", "connect", "C0SERVER2", group).returncode == 0
        with sqlite3.connect(sw.db) as conn:  # saved so while the server was 0.11.x, before an upgrade
            conn.execute("UPDATE bindings SET runner='server' WHERE channel_id='C0SERVER2'")
        said = sw.ask(f"connect {group}", "C0SERVER2")
        assert _runner(sw.db, "C0SERVER2") == [("auto",)], said
