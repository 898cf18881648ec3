"""The queue notice under a burst: one message per waiting thread, edited in place, counted by the fake Slack."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

CHANNEL = "C0QUEUE01"


def notice_calls(slack: FakeSlack) -> list[tuple[str, dict[str, Any]]]:
    """Every Slack call the bridge made for queue notices: their posts, and the edits of those posts."""
    posts = [p for p in slack.posts(CHANNEL) if p.args["text"].startswith("Queued")]
    ts = {str(p.response["ts"]) for p in posts if p.response}
    edits = [c for c in slack.calls_to("chat.update") if c.args.get("ts") in ts]
    return [("post", p.args) for p in posts] + [("edit", c.args) for c in edits]


def count(text: str) -> int:
    found = re.search(r"after the (\d+) earlier message", text)
    assert found, text
    return int(found.group(1))


@pytest.mark.slow
def test_a_thread_waiting_behind_many_mentions_gets_one_notice_kept_current(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            letta.set_delay(alice, 12.0)  # the first turn holds the channel while the thread fills up
            root, _ = bridge.mention("the first question", CHANNEL)
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)
            letta.set_delay(alice, 0.0)
            for n in range(6):
                _, response = bridge.mention(f"and {n}", CHANNEL, thread_ts=root["ts"])
                assert response.status_code == 200
            # Six mentions wait in the root's thread: the newest has the running turn and five more ahead.
            slack.wait_for(lambda: any(count(a["text"]) == 6 for _, a in notice_calls(slack)), 15)
            other, _ = bridge.mention("a question of its own", CHANNEL)  # a second thread, behind all seven
            slack.wait_for(lambda: len(slack.posts(CHANNEL, other["ts"])) >= 1, 10)
            slack.wait_for(lambda: "white_check_mark" in slack.reactions(CHANNEL, other["ts"]), 30)

            calls = notice_calls(slack)
            posts = [a for kind, a in calls if kind == "post"]
            assert [p["thread_ts"] for p in posts] == [root["ts"], other["ts"]], "one notice per waiting thread"
            assert count(posts[1]["text"]) == 7 and posts[1]["text"].endswith("in this channel.")
            [in_root] = [p for p in slack.messages(CHANNEL, root["ts"]) if p["text"].startswith("Queued")]
            # One message, edited in place: it reached the six waiting, and while the thread drains it may be edited
            # down again (it is kept current), never above what waited.
            assert 6 in [count(a["text"]) for _, a in calls], "the notice was brought up to the six waiting"
            assert 1 <= count(in_root["text"]) <= 6, in_root["text"]
            edits = [a for kind, a in calls if kind == "edit"]
            assert len(edits) <= 2 and all(e["channel"] == CHANNEL for e in edits)
            assert edits or count(posts[0]["text"]) == 6, "a notice that fell behind the queue was edited"
            replies = [p.args["text"] for p in slack.posts(CHANNEL, root["ts"]) if p.args.get("username")]
            assert len(replies) == 7, "every mention of the thread was answered"
        finally:
            bridge.stop()
