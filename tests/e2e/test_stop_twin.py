"""`@bot stop` in a thread reaches the bridge twice, as `app_mention` and as its `message` twin: one stop, never a
question to the agents (decide.decide_message: a message that mentions the bot is the mention, not a follow-up)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import World, open_world
from tests.e2e.test_mentions import wait_done
from tests.e2e.test_threads import agent_inputs, reply_in_thread
from tests.fakes.signing import event_body, mention_event, next_ts


def _stop_and_twin(world: World, channel: str, thread_ts: str) -> tuple[dict[str, object], dict[str, object]]:
    stop = mention_event("stop", channel=channel, thread_ts=thread_ts)
    world.slack.add_message(channel, stop["text"], ts=stop["ts"], thread_ts=thread_ts)
    return stop, dict(stop, type="message", channel_type="channel")


def _asked_after(world: World, channel: str, thread_ts: str, agent: str, before: int) -> list[str]:
    """What the agent was asked after `before`, once a later mention in the thread was answered (the thread's
    turns run in order: a stop taken for a question would have run before it)."""
    later = mention_event("and then?", channel=channel, thread_ts=thread_ts)
    world.slack.add_message(channel, later["text"], ts=later["ts"], thread_ts=thread_ts)
    assert world.bridge.post(event_body(later)).status_code == 200
    wait_done(world, channel, later["ts"])
    return agent_inputs(world, agent)[before:]


@pytest.mark.parametrize("twin_first", [False, True])
def test_a_stop_said_in_an_idle_thread_is_not_sent_to_the_agents(world: World, twin_first: bool) -> None:
    crew = world.bound_crew(("alice",))
    root, _ = world.bridge.mention("first question", crew.channel)
    wait_done(world, crew.channel, root["ts"])
    before = len(agent_inputs(world, crew.agents["alice"]))
    stop, twin = _stop_and_twin(world, crew.channel, root["ts"])
    for event in [twin, stop] if twin_first else [stop, twin]:
        assert world.bridge.post(event_body(event)).status_code == 200
    asked = _asked_after(world, crew.channel, root["ts"], crew.agents["alice"], before)
    assert len(asked) == 1 and asked[0].endswith("and then?"), asked


def test_a_stop_whose_twin_comes_after_the_stop_ended_is_not_a_new_turn(world: World) -> None:
    crew = world.bound_crew(("alice",))
    root, _ = world.bridge.mention("first question", crew.channel)
    wait_done(world, crew.channel, root["ts"])
    world.letta.set_delay(crew.agents["alice"], 3.0)
    slow = mention_event("a slow one", channel=crew.channel, thread_ts=root["ts"])
    assert world.bridge.post(event_body(slow)).status_code == 200
    world.letta.wait_for(lambda: any(t.endswith("a slow one") for t in agent_inputs(world, crew.agents["alice"])), 10)
    before = len(agent_inputs(world, crew.agents["alice"]))
    world.letta.set_delay(crew.agents["alice"], 0.0)
    stop, twin = _stop_and_twin(world, crew.channel, root["ts"])
    assert world.bridge.post(event_body(stop)).status_code == 200
    stopped = {"black_square_for_stop"}
    world.slack.wait_for(lambda: world.slack.reactions(crew.channel, slow["ts"]) == stopped, 10)  # nothing runs now
    assert world.bridge.post(event_body(twin)).status_code == 200
    asked = _asked_after(world, crew.channel, root["ts"], crew.agents["alice"], before)
    assert len(asked) == 1 and asked[0].endswith("and then?"), asked


def test_a_dm_reply_mentioning_the_bot_is_left_alone_when_direct_messages_are_off(tmp_path: Path) -> None:
    """No app_mention comes in a DM, so such a reply is no mention's twin: without DEFAULT_TARGET it is ignored
    like the rest of the DM, not answered 'This channel is not connected'."""
    with open_world("bridge", tmp_path) as world:
        dm, root = "D0DMCHAN1", next_ts()
        world.slack.add_channel(dm, "dm")
        world.slack.add_message(dm, "hello bot", user="U0123ABCD", ts=root)
        event = {"user": "U0123ABCD", "type": "message", "ts": root, "text": "hello bot", "team": "T0123ABCD",
                 "channel": dm, "event_ts": root, "channel_type": "im"}
        assert world.bridge.post(event_body(event)).status_code == 200
        reply_in_thread(world, dm, root, "<@U0BOTABCD> are you there?", kind="im")
        time.sleep(2)
        assert [p for p in world.slack.calls_to("chat.postMessage") if p.args.get("channel") == dm] == []
