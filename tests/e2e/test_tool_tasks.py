"""An agent's tool calls as tasks in its streamed reply (issue 18): pending, in progress, then complete or error,
one task per call, kept as task cards when the reply is written over the stream; where streams are refused, the
notes under the reply as before. On a REST server (0.16.8, reference §20) and on the App Server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import World, new_channel, open_world
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.e2e.test_live_replies import agent_messages, calls, wait_done
from tests.fakes.appserver import FakeAppServer
from tests.fakes.slack import FakeSlack

TOOLS = [("shout", True), ("explode", False)]


@pytest.fixture
def shown(tmp_path: Path) -> Iterator[tuple[World, str]]:
    channel = new_channel()
    live = {"LETTA_STREAM_TOKENS": "true", "SLACK_LIVE_EDIT_SECONDS": "0.1", "SLACK_SHOW_REASONING_EXCEPT": channel}
    with open_world("bridge", tmp_path, **live) as world:
        world.slack.add_channel(channel, f"chan-{channel.lower()}")
        yield world, channel


def _bind_alice(world: World, channel: str) -> str:
    alice = world.letta.add_agent("alice")
    world.letta.set_tools(alice, TOOLS)
    world.connect(channel, alice)
    return alice


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = message.get("blocks") or []
    return blocks if isinstance(blocks, list) else list(json.loads(blocks))


def test_two_tool_calls_one_failing_are_tasks_of_the_streamed_reply(shown: tuple[World, str]) -> None:
    world, channel = shown
    _bind_alice(world, channel)
    event, _ = world.bridge.mention("use your tools", channel)
    wait_done(world, channel, event["ts"])

    started = calls(world, "chat.startStream", channel)
    assert len(started) == 1, "one stream per reply"
    assert started[0].args["task_display_mode"] == "timeline"
    assert started[0].args["chunks"][0]["type"] == "task_update", "the first tool call opens the stream"
    ts = started[0].response["ts"]
    tasks = world.slack.stream_tasks[(channel, ts)]
    assert [t[0]["title"] for t in tasks.values()] == ["shout", "explode"]
    assert [[u["status"] for u in t] for t in tasks.values()] == [
        ["pending", "in_progress", "complete"],
        ["pending", "in_progress", "error"],
    ]
    failed = list(tasks.values())[1][-1]
    assert failed["details"] == '{"message": "ok"}' and "explode failed" in failed["output"]
    # The reply replaced the stream; its tasks stay as task cards above it, and are not repeated as notes.
    (reply,) = agent_messages(world, channel, event["ts"])
    assert reply["ts"] == ts and reply["text"] == "alice says hi"
    cards = [b for b in _blocks(reply) if b["type"] == "task_card"]
    assert [(c["title"], c["status"]) for c in cards] == [("shout", "complete"), ("explode", "error")]
    assert not world.slack.posts(channel, event["ts"]), "tool calls were posted as notes besides the tasks"


def test_where_streams_are_refused_tool_calls_stay_notes(shown: tuple[World, str]) -> None:
    world, channel = shown
    _bind_alice(world, channel)
    world.slack.fail_next("chat.startStream", "channel_type_not_supported")
    event, _ = world.bridge.mention("use your tools, no streams", channel)
    wait_done(world, channel, event["ts"])

    assert not world.slack.stream_tasks
    notes = [p for p in world.slack.posts(channel, event["ts"]) if p.args["text"] == "alice: reasoning and tool calls"]
    assert len(notes) == 1
    lines = [e["text"] for b in _blocks(notes[0].args) for e in b["elements"]]
    assert lines[0].startswith(":wrench: `shout(") and lines[0].endswith("→ success`")
    assert lines[1].startswith(":wrench: `explode(") and lines[1].endswith("→ error`")


def test_tasks_hide_the_arguments_where_reasoning_is_not_shown(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path, LETTA_STREAM_TOKENS="true", SLACK_TASK_DISPLAY="plan") as world:
        channel = new_channel()
        world.slack.add_channel(channel, f"chan-{channel.lower()}")
        _bind_alice(world, channel)
        event, _ = world.bridge.mention("quietly", channel)
        wait_done(world, channel, event["ts"])
        (started,) = calls(world, "chat.startStream", channel)
        assert started.args["task_display_mode"] == "plan"
        updates = [u for t in world.slack.stream_tasks[(channel, started.response["ts"])].values() for u in t]
        assert updates and not any("details" in u or "output" in u for u in updates)
        assert [m["text"] for m in agent_messages(world, channel, event["ts"])] == ["alice says hi"]


def test_on_the_app_server_a_read_only_tool_completes_and_a_refused_one_is_an_error(tmp_path: Path) -> None:
    """Write asks for approval; nobody decides within APPROVAL_TIMEOUT_SECONDS, so it is denied, an error task."""
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    app = FakeAppServer(scale=0.001)
    app.start()
    channel = new_channel()
    settings = {"LETTA_STREAM_TOKENS": "true", "SLACK_LIVE_EDIT_SECONDS": "0.1", "LETTA_TOOLS": "true",
                "SLACK_SHOW_REASONING_EXCEPT": channel, "APPROVAL_TIMEOUT_SECONDS": "1"}
    env = base_env(slack.api_url, app.url, tmp_path / "bridge.db", **settings)
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        alice = app.add_agent("alice")
        app.set_tools(alice, [("Bash", True), ("Write", False)])  # read-only runs; Write asks, and times out
        slack.add_channel(channel, f"chan-{channel.lower()}")
        done = run_cli(env, "channels", "connect", channel, alice)
        assert done.returncode == 0, done.stderr + done.stdout
        event, _ = bridge.mention("use your tools", channel)
        slack.wait_for(lambda: bool({"white_check_mark", "warning"} & slack.reactions(channel, event["ts"])), 20)

        (started,) = [c for c in slack.calls_to("chat.startStream") if c.ok]
        tasks = slack.stream_tasks[(channel, started.response["ts"])]
        assert [(t[0]["title"], [u["status"] for u in t]) for t in tasks.values()] == [
            ("Bash", ["pending", "in_progress", "complete"]),
            ("Write", ["pending", "error"]),
        ]
        assert "approve" in list(tasks.values())[1][-1]["output"]  # why it failed: nobody approved in time
        reply, card = [m for m in slack.messages(channel, event["ts"]) if m.get("bot_id") and m["ts"] != event["ts"]]
        assert "Write" in card["text"]  # the card, written while the reply streamed above it
        assert reply["text"] == "alice says hi"
        assert [(b["title"], b["status"]) for b in _blocks(reply) if b["type"] == "task_card"] == [
            ("Bash", "complete"),
            ("Write", "error"),
        ]
    finally:
        bridge.stop()
        app.stop()
        slack.stop()


def test_a_reply_of_only_tool_calls_keeps_its_tasks_and_is_not_marked_cut_off(shown: tuple[World, str]) -> None:
    """The agent ran its tools and said nothing: its stream, opened by the first tool call, was closed as
    "(cut off)", as if the turn had failed, beside "No agent had anything to say this time."."""
    world, channel = shown
    alice = _bind_alice(world, channel)
    world.letta.set_reply(alice, [])
    event, _ = world.bridge.mention("use your tools, say nothing", channel)
    wait_done(world, channel, event["ts"])

    draft, said = agent_messages(world, channel, event["ts"])
    assert draft["ts"] == calls(world, "chat.startStream", channel)[0].response["ts"]
    assert "cut off" not in draft["text"], draft["text"]
    cards = [b for b in _blocks(draft) if b["type"] == "task_card"]
    assert [(c["title"], c["status"]) for c in cards] == [("shout", "complete"), ("explode", "error")]
    assert said["text"] == "No agent had anything to say this time."
