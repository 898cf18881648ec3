"""A bound channel's life in Slack while its turns wait: archived, or the bot removed from it; a waiting mention
deleted; a private channel shared through Slack Connect, whose id Slack changes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.notice_words import EDITED_AWAY_NOTICE, STOPPED_NOTICE, WITHDRAWN_NOTICE
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.e2e.test_guarantees import Rig, rig
from tests.e2e.test_operator_view import outcomes
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack
from tests.reference import SLACK


def _asked(r: Rig, word: str) -> int:
    return sum(1 for i in r.letta.inputs if word in i.text)


def _one_waits(r: Rig, first_words: str, second_words: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two mentions in their own threads, alice slow: the first runs, the second waits behind it. The first runs
    long enough for a test to act on the second while it waits, on a loaded machine too (2 s was seen too short)."""
    r.letta.set_delay(r.agents["alice"], 4.0)
    first, _ = r.bridge.mention(first_words, r.channel)
    second, _ = r.bridge.mention(second_words, r.channel)
    r.letta.wait_for(lambda: _asked(r, first_words) == 1, 10)
    return first, second


def _wait_logged(r: Rig, text: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while r.bridge.logs().count(text) < count:
        assert time.monotonic() < deadline, f"{count} x {text!r} never logged:\n{r.bridge.logs()[-3000:]}"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("gone", "back", "why"),
    [
        (lambda s, c: s.archive_channel(c), lambda s, c: s.archive_channel(c, False), "archived"),
        (lambda s, c: s.remove_bot(c), lambda s, c: s.remove_bot(c, False), "no longer in the channel"),
    ],
    ids=["archived", "bot-removed"],
)
def test_turns_queued_in_a_channel_slack_refuses_are_not_sent_to_the_agents(
    tmp_path: Path, gone: Callable[..., None], back: Callable[..., None], why: str
) -> None:
    """The channel was archived (or the bot removed) while a turn ran and two waited: the running one fails at
    its post; the waiting ones are not sent to the agents, whose answers nobody could see (they would remember
    a conversation the channel never shows), and each is logged in plain words. Once the channel takes posts
    again, a new mention is answered."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        first, _ = r.bridge.mention("first", r.channel)
        r.slack.wait_for(lambda: r.replies(first["ts"]) == ["alice"], 20)
        r.letta.set_delay(r.agents["alice"], 2.0)
        r.bridge.mention("second", r.channel)
        r.bridge.mention("third", r.channel)
        r.bridge.mention("fourth", r.channel)
        r.letta.wait_for(lambda: _asked(r, "second") == 1, 10)
        gone(r.slack, r.channel)
        _wait_logged(r, "turn ended", 4)
        assert _asked(r, "third") == 0 and _asked(r, "fourth") == 0, "agents asked for a channel nobody can see"
        logs = r.bridge.logs()
        assert logs.count("turn not run") == 2 and why in logs
        assert "Traceback" not in logs
        back(r.slack, r.channel)
        r.letta.set_delay(r.agents["alice"], 0)
        fifth, _ = r.bridge.mention("fifth", r.channel)
        r.slack.wait_for(lambda: r.replies(fifth["ts"]) == ["alice"], 20)
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def _deleted(mention: dict[str, Any], channel: str) -> bytes:
    """Slack's message_deleted event for the mention (reference/slack/events/message_deleted.json)."""
    event = json.loads((SLACK / "events" / "message_deleted.json").read_text())["event"]
    previous = {k: mention[k] for k in ("type", "user", "text", "ts", "team") if k in mention}
    event.update(channel=channel, deleted_ts=mention["ts"], previous_message={**previous, "type": "message"})
    return event_body(event)


def _tombstoned(mention: dict[str, Any], channel: str) -> bytes:
    """What Slack sends for a deleted message that has replies (its queue notice, here): `message_changed` whose
    message is the placeholder left in its place (shape: matterbridge#600, slack-edge#10, openclaw#22035; no
    capture in reference/slack)."""
    ts = mention["ts"]
    tombstone = {"type": "message", "subtype": "tombstone", "text": "This message was deleted.", "user": "USLACKBOT",
                 "hidden": True, "ts": ts, "thread_ts": ts, "parent_user_id": "USLACKBOT", "reply_count": 1}
    event = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel,
             "message": tombstone, "previous_message": {**mention, "type": "message"},
             "event_ts": next_ts(), "ts": next_ts(), "channel_type": "channel"}
    return event_body(event)


def test_a_waiting_mention_deleted_is_not_run_and_a_running_one_is(tmp_path: Path) -> None:
    """A person deleted their mention while it waited behind another: they took the question back, so it is never
    sent to the agents (logged as withdrawn). A mention deleted once its turn has started is answered: the agents
    already have it, and the thread stays in Slack under the deleted message."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        r.letta.set_delay(r.agents["alice"], 2.0)
        first, _ = r.bridge.mention("first", r.channel)
        second, _ = r.bridge.mention("second", r.channel)
        third, _ = r.bridge.mention("third", r.channel)
        r.letta.wait_for(lambda: _asked(r, "first") == 1, 10)
        r.slack.wait_for(lambda: len(r.slack.messages(r.channel, second["ts"])) == 1, 10)  # its queue notice
        assert r.bridge.post(_tombstoned(second, r.channel)).status_code == 200  # it has replies: its notice
        assert r.bridge.post(_deleted(first, r.channel)).status_code == 200
        r.slack.wait_for(lambda: r.replies(third["ts"]) == ["alice"], 20)
        assert r.replies(first["ts"]) == ["alice"], "a running turn whose mention was deleted was cut short"
        assert _asked(r, "second") == 0, "a mention deleted before its turn ran was still sent to the agents"
        assert r.replies(second["ts"]) == []
        # Its queue notice promised an answer that will never come: it says so (within NOTICE_SPACING).
        r.slack.wait_for(lambda: [m["text"] for m in r.slack.messages(r.channel, second["ts"])] == [WITHDRAWN_NOTICE])
        assert r.bridge.logs().count("turn withdrawn") == 1
        _wait_logged(r, "turn ended", 2)
        # Every turn accepted is counted once: the withdrawn one too, which no run ends.
        assert outcomes(r.bridge) == {"done": 2.0, "withdrawn": 1.0}
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_a_waiting_mention_stopped_has_its_queue_notice_say_it_will_not_be_answered(tmp_path: Path) -> None:
    """"stop" said in a thread whose mention waits behind another channel turn: it is never sent to the agents,
    and the thread's "Queued: I'll answer after…" notice no longer promises an answer."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        first, second = _one_waits(r, "first", "second")
        r.slack.wait_for(lambda: len(r.slack.messages(r.channel, second["ts"])) == 1, 10)  # its queue notice
        _, response = r.bridge.mention("stop", r.channel, thread_ts=second["ts"])
        assert response.status_code == 200
        r.slack.wait_for(lambda: [m["text"] for m in r.slack.messages(r.channel, second["ts"])] == [STOPPED_NOTICE])
        r.slack.wait_for(lambda: r.replies(first["ts"]) == ["alice"], 20)
        assert _asked(r, "second") == 0, "a mention stopped before its turn ran was still sent to the agents"
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_a_private_channel_shared_with_another_organisation_keeps_its_binding_and_threads(tmp_path: Path) -> None:
    """Sharing a private channel through Slack Connect changes its id for good (channel_id_changed, G... -> C...;
    docs.slack.dev/reference/events/channel_id_changed: 'update any records you have stored'). The channel used
    to become unbound: every mention got 'not connected', and the bot's threads took no follow-up."""
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start(), letta.start()
    alice = letta.add_agent("alice")
    settings = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
    assert run_cli(settings, "channels", "connect", "G0PRIV001", letta.add_group([alice])).returncode == 0
    bridge = BridgeProcess(settings).start(tmp_path / "bridge.log")
    r = Rig(slack, letta, bridge, {"alice": alice}, "C0PRIV001")
    try:
        before, _ = bridge.mention("before sharing", "G0PRIV001")
        slack.wait_for(lambda: [p.args.get("username") for p in slack.posts("G0PRIV001", before["ts"])] == ["alice"])
        changed = {"type": "channel_id_changed", "old_channel_id": "G0PRIV001", "new_channel_id": "C0PRIV001",
                   "event_ts": next_ts()}
        assert bridge.post(event_body(changed)).status_code == 200
        after, _ = bridge.mention("after sharing", "C0PRIV001")
        slack.wait_for(lambda: len(slack.posts("C0PRIV001", after["ts"])) == 1, 20)
        assert r.replies(after["ts"]) == ["alice"], slack.posts("C0PRIV001", after["ts"])[0].args["text"]
        ts = next_ts()
        follow = {"user": "U0123ABCD", "type": "message", "ts": ts, "text": "and a follow-up", "team": "T0123ABCD",
                  "thread_ts": before["ts"], "parent_user_id": "U0123ABCD", "channel": "C0PRIV001", "event_ts": ts,
                  "channel_type": "channel"}
        assert bridge.post(event_body(follow)).status_code == 200
        slack.wait_for(lambda: r.replies(before["ts"]) == ["alice"], 20)
        assert "Traceback" not in bridge.logs()
    finally:
        bridge.stop(), letta.stop(), slack.stop()


def test_a_notice_slack_refuses_for_good_ends_its_turn_once(tmp_path: Path) -> None:
    """A mention in an unconnected channel archived before its turn ran: its 'not connected' notice is refused
    for good (is_archived). The refusal escaped the turn as a crash: a traceback, the turn run three times, then
    left unfinished for the next start, which tried again, at every start."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        r.slack.archive_channel("C0NOBIND1")
        r.bridge.mention("anyone here?", "C0NOBIND1")
        _wait_logged(r, "turn ended", 1)
        time.sleep(1.5)  # a crashed turn is run again after CRASH_PAUSES[0] (1 s)
        logs = r.bridge.logs()
        assert "Traceback" not in logs and "turn worker failed" not in logs, logs[-3000:]
        assert len(r.slack.calls_to("chat.postMessage")) == 1
        assert "status=unbound" in logs and "is_archived" in logs
        r.bridge.restart(tmp_path / "again.log")
        time.sleep(2)
        assert len(r.slack.calls_to("chat.postMessage")) == 1, "the turn was run again at the next start"
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_a_waiting_mention_edited_is_answered_as_edited_and_a_running_one_as_first_sent(tmp_path: Path) -> None:
    """A person fixed their question while it waited: the agents were sent the words as first written. Slack
    sends the edited mention again (reference/slack/events/app_mention_edited.json): a turn still waiting takes
    the new words; one already running answers what it was asked."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        first, second = _one_waits(r, "first question", "secnod qeustion")
        for mention, words in ((second, "second question, typos fixed"), (first, "first question, edited late")):
            edited = {**mention, "text": f"<@U0BOTABCD> {words}", "event_ts": next_ts()}
            edited["edited"] = {"user": mention["user"], "ts": edited["event_ts"]}
            assert r.bridge.post(event_body(edited)).status_code == 200
        r.slack.wait_for(lambda: r.replies(second["ts"]) == ["alice"], 20)
        assert _asked(r, "second question, typos fixed") == 1 and _asked(r, "secnod") == 0
        assert _asked(r, "edited late") == 0 and r.replies(first["ts"]) == ["alice"]
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def _changed(mention: dict[str, Any], channel: str, text: str, thread_ts: str | None = None) -> bytes:
    """Slack's message_changed for a person's edit of `mention` (reference/slack/events/message_changed.json)."""
    ts = next_ts()
    message = {"type": "message", "user": mention["user"], "text": text, "ts": mention["ts"],
               "edited": {"user": mention["user"], "ts": ts}}
    previous = {"type": "message", "user": mention["user"], "text": mention["text"], "ts": mention["ts"]}
    if thread_ts is not None:
        message["thread_ts"] = previous["thread_ts"] = thread_ts
    event = {"type": "message", "subtype": "message_changed", "channel": channel, "ts": ts, "event_ts": ts,
             "channel_type": "channel", "hidden": True, "message": message, "previous_message": previous}
    return event_body(event)


def test_a_waiting_mention_edited_to_mention_the_bot_no_more_is_taken_back(tmp_path: Path) -> None:
    """revAE: a person edited their waiting mention so that it no longer spoke to the bot (the question handed to
    a colleague): before, the agents were still sent it, in its new words."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        first, second = _one_waits(r, "first question", "second question")
        r.slack.wait_for(lambda: len(r.slack.messages(r.channel, second["ts"])) == 1, 10)  # its queue notice
        handed = _changed(second, r.channel, "<@U0456EFGH> could you take this one instead?")
        assert r.bridge.post(handed).status_code == 200
        r.slack.wait_for(lambda: r.replies(first["ts"]) == ["alice"], 20)
        said = [EDITED_AWAY_NOTICE]  # revAF: not "deleted": the message is there, edited
        r.slack.wait_for(lambda: [m["text"] for m in r.slack.messages(r.channel, second["ts"])] == said)
        assert _asked(r, "take this one") == 0 and _asked(r, "second question") == 0
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_a_waiting_thread_mention_edited_to_mention_the_bot_no_more_is_taken_back(tmp_path: Path) -> None:
    """revAF: a mention in a people's thread (where the bot never answered), edited so it no longer mentions the
    bot ("never mind"), was still sent to the agents: only a colleague's mention at its start counted."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        r.letta.set_delay(r.agents["alice"], 2.0)
        first, _ = r.bridge.mention("first question", r.channel)
        r.letta.wait_for(lambda: _asked(r, "first question") == 1, 10)
        people_thread = next_ts()
        second, _ = r.bridge.mention("second question", r.channel, thread_ts=people_thread)
        r.slack.wait_for(lambda: len(r.slack.messages(r.channel, people_thread)) >= 1, 10)  # its queue notice
        edited = _changed(second, r.channel, "never mind, sorted it out myself", thread_ts=people_thread)
        assert r.bridge.post(edited).status_code == 200
        r.slack.wait_for(lambda: r.replies(first["ts"]) == ["alice"], 20)
        _wait_logged(r, "turn withdrawn", 1)
        assert _asked(r, "sorted it out") == 0 and _asked(r, "second question") == 0
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()
