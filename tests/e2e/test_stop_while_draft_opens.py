"""A stop (Slack's Stop, in an agent session) that lands while Slack is still answering the chat.startStream that
opens an agent's draft: the turn was cancelled before it knew the draft, so nothing stopped the stream, which stayed
in the thread streaming its first words beside "Stopped by @maria" (revT). The stream Slack opens meanwhile is the
turn's to close, marked stopped."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import World, new_channel, open_world
from tests.e2e.test_live_replies import LIVE, agent_messages
from tests.e2e.test_sessions import ASKER
from tests.fakes.signing import event_body, next_ts
from tests.reference import SLACK, load

WORDS = " ".join(f"word{i}" for i in range(400))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[World]:
    with open_world("bridge", tmp_path, **LIVE) as world:
        world.slack.agent_app = True
        yield world


def test_a_stop_while_slack_opens_a_draft_closes_that_draft(live: World) -> None:
    alice, channel = live.letta.add_agent("alice"), new_channel()
    live.slack.add_channel(channel, f"chan-{channel.lower()}")
    live.connect(channel, alice)
    live.letta.set_reply(alice, WORDS)
    live.letta.token_delay = 0.05
    live.slack.answer_delays["chat.startStream"] = 1.5  # the stream is made; Slack's answer is slow to come back
    event, _ = live.bridge.mention("go", channel, user=ASKER)
    live.slack.wait_for(lambda: bool(live.slack.calls_to("chat.startStream")), timeout=20)
    stopped = copy.deepcopy(load(SLACK / "events" / "agent_session_stopped.json"))["event"]
    stopped.update(channel=channel, thread_ts=event["ts"], user=ASKER, event_ts=next_ts())
    assert live.bridge.post(event_body(stopped)).status_code == 200
    marked = lambda: ["stopped by" in m["text"].lower() for m in agent_messages(live, channel, event["ts"])]  # noqa: E731
    live.slack.wait_for(lambda: marked() == [True], timeout=15)
    assert not live.slack.open_streams()
