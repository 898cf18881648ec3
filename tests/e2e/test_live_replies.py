"""Token streaming shown in Slack: a reply grows in place (a Slack stream, or chat.update where streams are
refused) and the finished reply replaces the draft; reasoning and tool calls under a reply where a channel asks."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import World, new_channel, open_world

WORDS = " ".join(f"word{i}" for i in range(40))
SSE = {"content-type": "text/event-stream; charset=utf-8"}
LIVE = {"LETTA_STREAM_TOKENS": "true", "SLACK_LIVE_EDIT_SECONDS": "0.1"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[World]:
    with open_world("bridge", tmp_path, **LIVE) as world:
        world.letta.token_delay = 0.02
        yield world


def wait_done(world: World, channel: str, ts: str, timeout: float = 15.0) -> None:
    world.slack.wait_for(lambda: bool({"white_check_mark", "warning"} & world.slack.reactions(channel, ts)), timeout)


def agent_messages(world: World, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    return [m for m in world.slack.messages(channel, thread_ts) if m.get("bot_id") and m["ts"] != thread_ts]


def bind(world: World, names: tuple[str, ...] = ("alice", "bob")) -> tuple[str, dict[str, str]]:
    crew = world.crew(names)
    world.slack.add_channel(crew.channel, f"chan-{crew.channel.lower()}")
    world.connect(crew.channel, crew.group_id)
    return crew.channel, crew.agents


def calls(world: World, method: str, channel: str) -> list[Any]:
    return [c for c in world.slack.calls_to(method) if c.args.get("channel") == channel and c.ok]


def test_a_reply_grows_in_a_slack_stream_and_the_final_text_replaces_it(live: World) -> None:
    channel, agents = bind(live)
    live.letta.token_delay = 0.06
    live.letta.set_reply(agents["alice"], WORDS)
    event, _ = live.bridge.mention("stream it", channel)
    wait_done(live, channel, event["ts"])

    started = calls(live, "chat.startStream", channel)
    assert [c.args["username"] for c in started] == ["alice", "bob"]
    assert all(c.args["thread_ts"] == event["ts"] for c in started)
    assert started[0].args["recipient_user_id"] == "U0123ABCD" and started[0].args["recipient_team_id"]
    alice_ts = started[0].response["ts"]
    appends = [c for c in calls(live, "chat.appendStream", channel) if c.args["ts"] == alice_ts]
    assert len(appends) >= 2, "alice's reply did not grow in steps"
    streamed = started[0].args["markdown_text"] + "".join(c.args["markdown_text"] for c in appends)
    assert WORDS.startswith(streamed.strip()) and len(started[0].args["markdown_text"]) < len(WORDS)
    assert [c.args["ts"] for c in calls(live, "chat.stopStream", channel)] == [alice_ts, started[1].response["ts"]]
    final = [c for c in calls(live, "chat.update", channel) if c.args["ts"] == alice_ts]
    assert final[-1].args["text"] == WORDS
    # One message per agent: the draft became the reply; nothing posted beside it.
    assert not live.slack.posts(channel, event["ts"])
    shown = agent_messages(live, channel, event["ts"])
    assert [(m.get("username"), m["text"]) for m in shown] == [("alice", WORDS), ("bob", "bob says hi")]


def test_where_streams_are_refused_the_draft_is_a_message_edited_in_place(live: World) -> None:
    channel, agents = bind(live, ("alice",))
    long_reply = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum & <dolor> " * 20 for i in range(20))
    live.letta.set_reply(agents["alice"], long_reply)
    live.letta.token_delay = 0.002
    live.slack.fail_next("chat.startStream", "channel_type_not_supported")
    event, _ = live.bridge.mention("no streams here", channel)
    wait_done(live, channel, event["ts"], 30)

    posts = live.slack.posts(channel, event["ts"])
    draft_ts = posts[0].response["ts"]
    edits = [c for c in calls(live, "chat.update", channel) if c.args["ts"] == draft_ts]
    assert len(edits) >= 2, "the draft was not edited while it grew"
    assert all(len(c.args["text"]) <= 4000 for c in edits)
    shown = agent_messages(live, channel, event["ts"])
    assert shown[0]["ts"] == draft_ts
    assert all(m.get("username") == "alice" for m in shown)
    text = "".join(html.unescape(m["text"]) for m in shown)
    for i in range(20):
        assert f"Paragraph {i}:" in text
    assert text.count("lorem ipsum") == 400, "a part of the long reply is missing or doubled"
    assert "<dolor>" not in "".join(m["text"] for m in shown), "agent text reached Slack unescaped"
    # The refusal is remembered: the next turn goes straight to chat.update.
    again, _ = live.bridge.mention("again", channel)
    wait_done(live, channel, again["ts"], 30)
    assert len(live.slack.calls_to("chat.startStream")) == 1


def test_without_token_streaming_replies_are_posted_whole(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        channel, agents = bind(world)
        world.letta.set_reply(agents["alice"], WORDS)
        event, _ = world.bridge.mention("whole please", channel)
        wait_done(world, channel, event["ts"])
        assert not world.slack.calls_to("chat.startStream") and not world.slack.calls_to("chat.update")
        assert [p.args["text"] for p in world.slack.posts(channel, event["ts"])] == [WORDS, "bob says hi"]
        sends = world.letta.sends()
        assert sends and not any((r.body or {}).get("stream_tokens") for r in sends)


def test_server_run_group_token_stream_posts_each_member_once(tmp_path: Path) -> None:
    with open_world("server", tmp_path, **LIVE) as world:
        channel, _ = bind(world, ("alice", "bob", "carol"))
        event, _ = world.bridge.mention("all of you", channel)
        wait_done(world, channel, event["ts"])
        sends = [r for r in world.letta.requests if r.path.endswith("/messages/stream")]
        assert sends and all((r.body or {}).get("stream_tokens") is True for r in sends)
        shown = agent_messages(world, channel, event["ts"])
        assert [(m.get("username"), m["text"]) for m in shown] == [
            ("alice", "alice says hi"),
            ("bob", "bob says hi"),
            ("carol", "carol says hi"),
        ]


@pytest.mark.slow
def test_kill_9_while_a_reply_grows_then_restart_replaces_the_draft(live: World) -> None:
    channel, agents = bind(live, ("alice",))
    live.letta.token_delay = 0.15
    live.letta.set_reply(agents["alice"], WORDS)
    event, _ = live.bridge.mention("survive the stream", channel)
    live.slack.wait_for(lambda: bool(calls(live, "chat.appendStream", channel)), 15)
    live.bridge.kill()
    live.letta.wait_for(lambda: all(i.finished for i in live.letta.inputs), 20)
    live.bridge.restart()
    wait_done(live, channel, event["ts"], 30)
    shown = agent_messages(live, channel, event["ts"])
    assert [(m.get("username"), m["text"]) for m in shown] == [("alice", WORDS)]
    assert len([i for i in live.letta.inputs if i.agent_id == agents["alice"]]) == 1


@pytest.mark.slow
def test_kill_9_while_a_reply_grows_then_the_resumed_turn_finishes_that_draft(live: World) -> None:
    """Letta with Redis: the restarted bridge re-attaches to alice's run still going and streams it again. Before,
    it opened a second draft for it and the first stayed in the thread, a stream never stopped, half the reply."""
    live.letta.redis = True
    channel, agents = bind(live, ("alice",))
    live.letta.token_delay = 0.15
    live.letta.set_reply(agents["alice"], WORDS)
    event, _ = live.bridge.mention("survive the stream", channel)
    live.slack.wait_for(lambda: bool(calls(live, "chat.appendStream", channel)), 15)
    live.bridge.kill()
    live.bridge.restart()
    wait_done(live, channel, event["ts"], 30)
    attached = [r for r in live.letta.requests if r.path.endswith("/stream") and (r.body or {}).get("otid")]
    assert attached, "the restarted bridge did not re-attach to alice's run"
    shown = agent_messages(live, channel, event["ts"])
    assert [(m.get("username"), m["text"]) for m in shown] == [("alice", WORDS)]
    assert not live.slack.open_streams(), "a draft was left streaming"
    assert len(calls(live, "chat.startStream", channel)) == 1, "the resumed turn opened a second draft"
    assert len([i for i in live.letta.inputs if i.agent_id == agents["alice"]]) == 1


@pytest.mark.parametrize("runner", ["server", "bridge"])
def test_reasoning_is_shown_under_the_reply_only_where_the_channel_asks(runner: str, tmp_path: Path) -> None:
    shown_here = new_channel()
    with open_world("server", tmp_path, SLACK_SHOW_REASONING_EXCEPT=shown_here) as world:
        agents = {name: world.letta.add_agent(name) for name in ("alice", "bob")}
        group = world.letta.add_group(list(agents.values()))
        quiet = new_channel()
        for channel in (shown_here, quiet):
            world.slack.add_channel(channel, f"chan-{channel.lower()}")
            world.connect(channel, group, runner=runner)
        asked, _ = world.bridge.mention("think aloud", shown_here)
        wait_done(world, shown_here, asked["ts"])
        posts = world.slack.posts(shown_here, asked["ts"])
        assert [p.args.get("username") for p in posts] == ["alice", "alice", "bob", "bob"]
        note = posts[1].args
        assert note["text"] == "alice: reasoning and tool calls"
        blocks = note["blocks"] if isinstance(note["blocks"], list) else json.loads(note["blocks"])
        assert blocks[0]["type"] == "context"
        assert re.search(r"Replying to the user\.", blocks[0]["elements"][0]["text"])

        quiet_event, _ = world.bridge.mention("think quietly", quiet)
        wait_done(world, quiet, quiet_event["ts"])
        time.sleep(0.2)
        assert [p.args["text"] for p in world.slack.posts(quiet, quiet_event["ts"])] == [
            "alice says hi",
            "bob says hi",
        ]


def test_rate_limited_drafts_are_skipped_and_the_reply_still_lands_whole(live: World) -> None:
    channel, agents = bind(live, ("alice",))
    live.letta.token_delay = 0.05
    live.letta.set_reply(agents["alice"], WORDS)
    live.slack.fail_next("chat.appendStream", "ratelimited", headers={"retry-after": "30"})
    event, _ = live.bridge.mention("slow down", channel)
    wait_done(live, channel, event["ts"])
    appends = live.slack.calls_to("chat.appendStream")
    assert len(appends) == 1 and appends[0].status == 429, "a rate-limited draft was retried or not paused"
    shown = agent_messages(live, channel, event["ts"])
    assert [(m.get("username"), m["text"]) for m in shown] == [("alice", WORDS)]
    assert "drafts paused for 30s" in live.bridge.logs()


def _fragment(text: str) -> bytes:
    message = {
        "id": "message-7d2c6c4e-1111-4b7e-9a55-2f0a6a0c1d01",
        "message_type": "assistant_message",
        "otid": "7d2c6c4e-1111-4b7e-9a55-2f0a6a0c1d00",
        "name": None,
        "content": text,
    }
    return b"data: " + json.dumps(message).encode() + b"\n\n"


@pytest.mark.parametrize("ending", ["cut off", "error event"])
def test_a_token_stream_that_breaks_mid_reply_keeps_what_was_said_and_says_why(live: World, ending: str) -> None:
    channel, agents = bind(live, ("alice",))
    body = b'data: {"message_type":"ping","id":"ping-1"}\n\n' + b"".join(
        _fragment(word) for word in ("The ", "deploy ", "went ", "fine ", "until ")
    )
    if ending == "error event":
        body += (
            b'data: {"message_type":"stop_reason","stop_reason":"llm_api_error"}\n\n'
            b'event: error\ndata: {"message_type":"error_message","run_id":"run-1","error_type":"llm_error",'
            b'"message":"An error occurred with the LLM request.","detail":"boom"}\n\ndata: [DONE]\n\n'
        )
    live.letta.fail_next("POST", f"/v1/agents/{agents['alice']}/messages/stream", 200, raw=body, headers=SSE)
    event, _ = live.bridge.mention("how did it go?", channel)
    wait_done(live, channel, event["ts"])
    shown = agent_messages(live, channel, event["ts"])
    # What was said is kept, marked as cut off: not passed off as the whole answer (revQ).
    assert shown[0].get("username") == "alice" and shown[0]["text"] == "The deploy went fine until _(cut off)_"
    assert len(calls(live, "chat.startStream", channel)) == 1, "the partial reply was posted beside its draft"
    notice = shown[-1]["text"]
    assert "alice" in notice
    assert ("connection to the Letta server dropped" if ending == "cut off" else "failed") in notice, notice
    assert "warning" in live.slack.reactions(channel, event["ts"])


def test_a_thread_that_is_a_conversation_streams_tokens_through_it(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path, LETTA_CONVERSATIONS="true", **LIVE) as world:
        world.letta.token_delay = 0.06
        channel, agents = bind(world, ("alice",))
        world.letta.set_reply(agents["alice"], WORDS)
        event, _ = world.bridge.mention("in a conversation", channel)
        wait_done(world, channel, event["ts"])
        sends = [r for r in world.letta.sends() if r.path.startswith("/v1/conversations/")]
        assert len(sends) == 1 and (sends[0].body or {}).get("stream_tokens") is True
        assert not [r for r in world.letta.sends() if r.path.startswith("/v1/agents/")]
        assert len(calls(world, "chat.appendStream", channel)) >= 2
        shown = agent_messages(world, channel, event["ts"])
        assert [(m.get("username"), m["text"]) for m in shown] == [("alice", WORDS)]


def test_broadcast_drafts_grow_side_by_side_and_each_becomes_its_reply(live: World) -> None:
    slow, fast = live.letta.add_agent("slow"), live.letta.add_agent("fast")
    channel = new_channel()
    live.slack.add_channel(channel, f"chan-{channel.lower()}")
    live.connect(channel, slow, fast, "--broadcast")
    live.letta.set_reply(slow, "slow " + WORDS)
    live.letta.set_reply(fast, "fast " + WORDS)
    live.letta.token_delay = 0.03
    event, _ = live.bridge.mention("everyone at once", channel)
    wait_done(live, channel, event["ts"])
    started = calls(live, "chat.startStream", channel)
    assert sorted(c.args["username"] for c in started) == ["fast", "slow"]
    spans = {c.args["username"]: c.at for c in started}
    stops = {c.args["ts"]: c.at for c in calls(live, "chat.stopStream", channel)}
    by_name = {c.args["username"]: c.response["ts"] for c in started}
    assert max(spans.values()) < min(stops[ts] for ts in by_name.values()), "the drafts did not grow side by side"
    shown = sorted((m.get("username"), m["text"]) for m in agent_messages(live, channel, event["ts"]))
    assert shown == [("fast", "fast " + WORDS), ("slow", "slow " + WORDS)]
    assert not live.slack.posts(channel, event["ts"])


def test_a_later_agent_s_draft_waits_for_every_part_of_the_reply_before_it(live: World) -> None:
    """Bob is asked while alice's long reply is still being posted (bridge/post_order.py), but his draft, a new
    message in the thread, only starts once her last part is in."""
    channel, agents = bind(live)
    long_reply = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 60 for i in range(8))
    live.letta.set_reply(agents["alice"], long_reply)
    live.letta.token_delay = 0.0005
    first, _ = live.bridge.mention("first", channel)  # the channel takes posts: from now on bob is asked at once
    wait_done(live, channel, first["ts"], 30)
    live.slack.answer_delays["chat.postMessage"] = 0.5
    event, _ = live.bridge.mention("second", channel)
    wait_done(live, channel, event["ts"], 30)

    alice_parts = live.slack.posts(channel, event["ts"])
    assert alice_parts and {p.args["username"] for p in alice_parts} == {"alice"}  # the parts after the draft
    bob_draft = [c for c in calls(live, "chat.startStream", channel) if c.args["thread_ts"] == event["ts"]][-1]
    assert bob_draft.args["username"] == "bob"
    bob_asked = next(i.started for i in live.letta.inputs if i.agent_name == "bob" and "second" in i.text)
    last_part_answered = alice_parts[-1].at + 0.5
    assert bob_asked < last_part_answered, "bob was not asked while alice's reply was posted"
    assert bob_draft.at >= last_part_answered, "bob's draft came in between alice's parts"
    shown = agent_messages(live, channel, event["ts"])
    assert [m.get("username") for m in shown] == ["alice"] * (len(shown) - 1) + ["bob"]


def test_a_draft_names_its_agent_as_the_finished_reply_does(tmp_path: Path) -> None:
    """revAE: with usernames off, the growing draft was headed with the Letta name (**alice**:), and the finished
    reply that replaced it with SLACK_AGENTS' display name: the name changed before the reader's eyes."""
    from tests.e2e.test_mentions import wait_done

    looks = '{"alice": {"display_name": "Alice (research)"}}'
    with open_world("bridge", tmp_path, SLACK_AGENT_USERNAMES="false", SLACK_AGENTS=looks,
                    LETTA_STREAM_TOKENS="true", SLACK_LIVE_EDIT_SECONDS="0.1") as world:
        crew = world.bound_crew(("alice",))
        root, _ = world.bridge.mention("hello", crew.channel)
        wait_done(world, crew.channel, root["ts"])
        [start] = world.slack.calls_to("chat.startStream")
        [final] = [m for m in world.slack.messages(crew.channel, root["ts"]) if m.get("bot_id")]
        assert final["text"].startswith("*Alice (research)*:"), final["text"]
        assert start.args["markdown_text"].startswith("**Alice (research)**:"), start.args["markdown_text"]
