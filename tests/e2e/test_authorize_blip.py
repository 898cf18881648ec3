"""With one workspace, Bolt asks auth.test on the first event it handles after a start and answered 200 to any
Slack error there: a Slack 5xx or rate limit at that moment lost that event (and every one the events inbox handed
over at the start), though Slack had been told "got it". Now it is tried again: from the inbox, or by Slack after
a 500; only a token Slack refuses keeps Bolt's answer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import open_world
from tests.e2e.harness import inbox_drained, leave_in_inbox
from tests.fakes.signing import event_body, mention_event


def turns_for(db: Path, ts: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM turns WHERE message_ts=?", (ts,)).fetchone()[0])


@pytest.mark.parametrize("ingress", ["thread", "process"])
def test_an_acknowledged_event_outlives_slack_s_trouble_on_the_first_auth_test(tmp_path: Path, ingress: str) -> None:
    with open_world("bridge", tmp_path, HTTP_INGRESS=ingress) as world:
        crew = world.bound_crew(("alice",))
        world.slack.wait_for(lambda: len(world.slack.calls_to("auth.test")) >= 1, 10)  # the start's own check
        world.slack.fail_next("auth.test", error="service_unavailable", status=503)
        event, response = world.bridge.mention("hello during a Slack blip", crew.channel)
        assert response.status_code == 200
        world.slack.wait_for(lambda: len(world.slack.posts(crew.channel, event["ts"])) >= 1, 15)
        inbox_drained(tmp_path / "bridge.db")
        assert turns_for(tmp_path / "bridge.db", event["ts"]) == 1
        assert "slack request answered 500, to be delivered again" in world.bridge.logs()


def test_without_the_inbox_slack_is_answered_500_and_its_redelivery_is_served(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path, HTTP_EVENTS_INBOX="false") as world:
        crew = world.bound_crew(("alice",))
        world.slack.wait_for(lambda: len(world.slack.calls_to("auth.test")) >= 1, 10)
        world.slack.fail_next("auth.test", error="ratelimited", status=429, headers={"Retry-After": "0"}, times=4)
        body = event_body(mention_event("hello during a rate limit", channel=crew.channel))
        assert world.bridge.post(body).status_code == 500  # Slack delivers it again
        again = world.bridge.post(body, timestamp=int(time.time()) + 1, **{"X-Slack-Retry-Num": "1"})
        assert again.status_code == 200


def test_events_handed_over_at_a_start_during_slack_s_trouble_are_kept(tmp_path: Path) -> None:
    """A crash left an acknowledged event in the inbox; the restart met a Slack 500 on auth.test."""
    with open_world("bridge", tmp_path) as world:
        crew = world.bound_crew(("alice",))
        world.bridge.stop()
        event, _, _ = leave_in_inbox(tmp_path / "bridge.db", "left behind", crew.channel)
        world.slack.fail_next("auth.test", error="internal_error", status=500, times=2)  # the start's and Bolt's
        world.bridge.restart()
        world.slack.wait_for(lambda: len(world.slack.posts(crew.channel, event["ts"])) >= 1, 15)
        inbox_drained(tmp_path / "bridge.db")
        assert turns_for(tmp_path / "bridge.db", event["ts"]) == 1


def test_a_token_slack_refuses_is_not_tried_again_for_ever(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path, HTTP_EVENTS_INBOX="false") as world:
        crew = world.bound_crew(("alice",))
        world.slack.wait_for(lambda: len(world.slack.calls_to("auth.test")) >= 1, 10)
        world.slack.fail_next("auth.test", error="token_revoked", times=2)
        _, response = world.bridge.mention("hello with a revoked token", crew.channel)
        assert response.status_code == 200  # Bolt's own answer: delivering it again would not help


def test_a_slash_command_during_slacks_trouble_on_the_first_auth_test_is_told_to_try_again(tmp_path: Path) -> None:
    """Slack never sends a slash command again: a 500 (as an event gets, to be delivered again) showed the person
    only Slack's own failure. The command is answered with the reason, and the next one is served."""
    from tests.e2e.slash import slash_world

    with slash_world(tmp_path) as sw:
        sw.slack.wait_for(lambda: len(sw.slack.calls_to("auth.test")) >= 1, 10)  # the start's own check
        sw.slack.fail_next("auth.test", error="service_unavailable", status=503)
        answer = sw.send("status", "C0BLIP001")
        assert answer.ack.status_code == 200 and "try it again in a minute" in answer.ack.text, answer.ack.text
        assert "not connected" in sw.ask("status", "C0BLIP001")
