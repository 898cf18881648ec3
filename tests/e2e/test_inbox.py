"""The events inbox (HTTP_EVENTS_INBOX, on by default with SQLite): an event acknowledged by the ingress thread
but not yet made a turn when the process died is made one at the next start; with the inbox off, events are
acknowledged on the main loop and no inbox file exists."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from bridge.inbox import Inbox
from tests.e2e.conftest import open_world
from tests.e2e.harness import inbox_drained, leave_in_inbox


def finished(world_slack: object, channel: str, ts: str) -> None:
    marks = {"white_check_mark", "warning"}
    world_slack.wait_for(lambda: bool(marks & world_slack.reactions(channel, ts)), timeout=15)  # type: ignore[attr-defined]


def test_an_event_left_in_the_inbox_by_a_dead_process_becomes_a_turn_at_the_next_start(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        crew = world.bound_crew(("alice", "bob"))
        world.bridge.stop()
        event, body, headers = leave_in_inbox(tmp_path / "bridge.db", "left behind", crew.channel)

        world.bridge.restart()  # on a fresh port if another test took this one meanwhile
        finished(world.slack, crew.channel, event["ts"])
        assert len(world.slack.posts(crew.channel, event["ts"])) == 2
        inbox_drained(tmp_path / "bridge.db")
        assert "events left in the inbox by the last run handed over count=1" in world.bridge.logs()
        # The same request is a replay now: its signature went into the inbox with it.
        again = httpx.post(f"{world.bridge.url}/slack/events", content=body, headers=headers, timeout=10)
        assert again.status_code == 401 and "replayed" in again.text
        with sqlite3.connect(tmp_path / "bridge.db") as db:
            assert db.execute("SELECT count(*) FROM turns WHERE message_ts=?", (event["ts"],)).fetchone()[0] == 1


def test_with_the_inbox_off_events_are_acknowledged_on_the_main_loop(tmp_path: Path) -> None:
    leftover = Inbox(f"{tmp_path / 'bridge.db'}.inbox")  # a run with the inbox on left one behind
    leftover.open()
    leftover.record("v0=left", 2**40, {"content-type": "application/json"}, b"{}")
    leftover.close()
    with open_world("bridge", tmp_path, HTTP_EVENTS_INBOX="false") as world:
        crew = world.bound_crew(("alice",))
        event, response = world.bridge.mention("no inbox", crew.channel)
        assert response.status_code == 200
        finished(world.slack, crew.channel, event["ts"])
        assert "events_inbox=off" in world.bridge.logs()
        # What a run with the inbox on left behind is handed over all the same (tests/e2e/test_left_inbox.py).
        assert "events left in the inbox by the last run handed over count=1" in world.bridge.logs()
        inbox_drained(tmp_path / "bridge.db")
