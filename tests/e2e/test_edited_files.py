"""revBZ: a file taken out of a mention while its turn waits is neither fetched nor sent to the agents; a turn that
already runs was sent its files. Both edit routes: Slack's `message_changed` and the app_mention sent again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.test_channel_life import _asked
from tests.e2e.test_files import PNG
from tests.e2e.test_guarantees import Rig, rig
from tests.fakes.signing import event_body, mention_event, next_ts


def _changed_with_files(mention: dict[str, Any], channel: str, text: str, files: list[Any]) -> bytes:
    """Slack's message_changed for a person's edit of `mention`, the message as it is now (its files included)."""
    ts = next_ts()
    message = {"type": "message", "user": mention["user"], "text": text, "ts": mention["ts"],
               "edited": {"user": mention["user"], "ts": ts}, "files": files}
    previous = {"type": "message", "user": mention["user"], "text": mention["text"], "ts": mention["ts"],
                "files": mention["files"]}
    event = {"type": "message", "subtype": "message_changed", "channel": channel, "ts": ts, "event_ts": ts,
             "channel_type": "channel", "hidden": True, "message": message, "previous_message": previous}
    return event_body(event)


def _mention_with(r: Rig, words: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    """A mention with files, posted while alice (slow) answers another: it waits, with its queue notice."""
    mention = mention_event(words, channel=r.channel)
    mention["files"] = files
    assert r.bridge.post(event_body(mention)).status_code == 200
    r.slack.wait_for(lambda: len(r.slack.messages(r.channel, mention["ts"])) == 1, 10)  # its queue notice
    return mention


def _busy(r: Rig) -> None:
    r.letta.set_delay(r.agents["alice"], 2.0)
    r.bridge.mention("first question", r.channel)
    r.letta.wait_for(lambda: _asked(r, "first question") == 1, 10)


def test_a_file_taken_out_of_a_waiting_mention_is_not_sent_to_the_agents(tmp_path: Path) -> None:
    """A person shared the wrong screenshot with a mention that waits behind another, and took it out of the
    message (edited it away, words kept) before its turn came: the agents must not be sent the image."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        _busy(r)
        second = _mention_with(r, "what does this say?", [r.slack.add_file("payroll.png", PNG, "image/png")])
        edited = _changed_with_files(second, r.channel, "<@U0BOTABCD> what does this say?", [])
        assert r.bridge.post(edited).status_code == 200
        r.slack.wait_for(lambda: r.replies(second["ts"]) == ["alice"], 20)
        [sent] = [i for i in r.letta.inputs if "what does this say?" in i.text]
        assert "payroll.png" not in sent.text, sent.text
        assert r.slack.file_fetches == [], "a file taken out of the message was fetched with the bot token"
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_an_edited_mention_sent_again_keeps_only_the_files_left_and_a_running_turn_its_own(tmp_path: Path) -> None:
    """The app_mention Slack sends again for the edit, one of two files taken out: the waiting turn sends the other
    alone. The running turn, edited the same way, was sent both of its files (the agents have them)."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        r.letta.set_delay(r.agents["alice"], 2.0)
        keep, drop = r.slack.add_file("keep.png", PNG, "image/png"), r.slack.add_file("drop.png", PNG, "image/png")
        first = mention_event("first question", channel=r.channel)
        first["files"] = [r.slack.add_file("one.png", PNG, "image/png"), r.slack.add_file("two.png", PNG, "image/png")]
        assert r.bridge.post(event_body(first)).status_code == 200
        r.letta.wait_for(lambda: _asked(r, "first question") == 1, 10)
        second = _mention_with(r, "compare these", [keep, drop])
        for mention, left in ((first, first["files"][:1]), (second, [keep])):
            again = {**mention, "files": left, "edited": {"user": mention["user"], "ts": next_ts()}}
            assert r.bridge.post(event_body(again)).status_code == 200
        r.slack.wait_for(lambda: r.replies(second["ts"]) == ["alice"], 20)
        fetched = [f for f, _ in r.slack.file_fetches]
        assert sorted(fetched) == sorted([first["files"][0]["id"], first["files"][1]["id"], keep["id"]]), fetched
        [sent] = [i for i in r.letta.inputs if "compare these" in i.text]
        assert "drop.png" not in sent.text and _asked(r, "compare these") == 1, sent.text
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()


def test_words_edited_away_with_no_files_key_still_answers_the_file(tmp_path: Path) -> None:
    """revDP: docs/mentions.md: an edit that lists no files (no `files` key, as app_mention_edited.json) leaves the
    waiting turn's files as they were, and a message whose words are edited away while its files stay is answered
    with the files alone. Before, the turn was taken back ("edited to leave nothing to answer")."""
    r = rig(tmp_path, "0.16.8", ("alice",))
    try:
        _busy(r)
        second = _mention_with(r, "what does this chart say?", [r.slack.add_file("chart.png", PNG, "image/png")])
        again = {k: v for k, v in second.items() if k != "files"}
        again.update(text="<@U0BOTABCD>", edited={"user": second["user"], "ts": next_ts()})
        assert r.bridge.post(event_body(again)).status_code == 200
        r.slack.wait_for(lambda: r.replies(second["ts"]) == ["alice"], 20)
        assert [f for f, _ in r.slack.file_fetches] == [second["files"][0]["id"]]
        assert not [m for m in r.slack.messages(r.channel, second["ts"]) if "Not answered" in str(m.get("text"))]
    finally:
        r.bridge.stop(), r.letta.stop(), r.slack.stop()

