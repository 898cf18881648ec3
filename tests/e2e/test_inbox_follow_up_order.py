"""Two messages of one thread, a follow-up (no mention) acknowledged before a mention, reach the agent in the order
Slack was answered 200 (docs/guarantees.md, "In order, in parallel"). Before, the events inbox handed them to Bolt
side by side, and the follow-up's listener, which reads the store before it records its turn, lost the race: the
agent was asked [0, 2, 1]."""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.conftest import open_world
from tests.e2e.harness import leave_in_inbox
from tests.e2e.test_mentions import wait_done
from tests.fakes.signing import event_body, mention_event, next_ts


def follow_up_event(channel: str, thread_ts: str, text: str) -> dict[str, Any]:
    """A person's reply in the bot's thread, without a mention, as `message.channels` delivers it."""
    ts = next_ts()
    return {"user": "U0123ABCD", "type": "message", "ts": ts, "text": text, "team": "T0123ABCD",
            "thread_ts": thread_ts, "parent_user_id": "U0123ABCD", "channel": channel, "event_ts": ts,
            "channel_type": "channel"}


def asked_order(world: Any, agent: str, count: int) -> list[int]:
    """The numbers (mNNNN) of the first `count` messages, in the order the agent was asked them."""
    world.letta.wait_for(lambda: len([i for i in world.letta.inputs if i.agent_id == agent]) >= count, 30)
    texts = [i.text for i in world.letta.inputs if i.agent_id == agent]
    return [int(re.findall(r"m(\d{4})", t)[-1]) for t in texts if re.findall(r"m(\d{4})", t)]


@contextmanager
def answered_thread(tmp_path: Path) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
    """A bridge whose agent alice answered a first mention (m0000) in a bound channel: the world, its crew and
    that mention, whose thread takes follow-ups."""
    with open_world("bridge", tmp_path) as world:
        crew = world.bound_crew(("alice",))
        root, _ = world.bridge.mention("root question m0000", crew.channel)
        wait_done(world, crew.channel, root["ts"])
        yield world, crew, root


def the_two(world: Any, channel: str, root: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A follow-up without a mention (m0001, in Slack's thread too), then a mention (m0002), in the thread."""
    first = follow_up_event(channel, root["ts"], "follow-up without a mention m0001")
    world.slack.add_message(channel, first["text"], user="U0123ABCD", ts=first["ts"], thread_ts=root["ts"])
    return first, mention_event("then a mention m0002", channel=channel, thread_ts=root["ts"])


def test_a_follow_up_and_a_mention_left_in_the_inbox_keep_their_order(tmp_path: Path) -> None:
    with answered_thread(tmp_path) as (world, crew, root):
        world.bridge.stop()
        for event in the_two(world, crew.channel, root):
            leave_in_inbox(tmp_path / "bridge.db", "", "", event=event)
        world.bridge.restart()
        order = asked_order(world, crew.agents["alice"], 3)
        assert order == [0, 1, 2], f"asked out of order: {order}"


def test_a_follow_up_and_a_mention_sent_just_after_a_start_keep_their_order(tmp_path: Path) -> None:
    """Both acknowledged (200) one after the other while the restarted bridge waits for Slack's auth.test."""
    with answered_thread(tmp_path) as (world, crew, root):
        world.bridge.restart()
        world.slack.answer_delays["auth.test"] = 0.3
        for event in the_two(world, crew.channel, root):
            assert world.bridge.post(event_body(event)).status_code == 200
        order = asked_order(world, crew.agents["alice"], 3)
        assert order == [0, 1, 2], f"asked out of order: {order}"
