"""A thread whose only mention ended before it ran (deleted, or stopped, while it waited) is not a thread the bot
answers in: people's replies there stay theirs (store.turn_binding.ANSWERED_IN_THREAD)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import World, open_world
from tests.e2e.test_channel_life import _deleted
from tests.e2e.test_mentions import wait_done
from tests.e2e.test_threads import agent_inputs, reply_in_thread
from tests.fakes.signing import event_body, mention_event


@pytest.mark.parametrize("taken_back_by", ["deleting it", "stop"])
def test_chatter_in_a_thread_whose_mention_ended_before_it_ran_is_not_sent_to_the_agents(
    world: World, taken_back_by: str
) -> None:
    crew = world.bound_crew(("alice",))
    alice = crew.agents["alice"]
    world.slack.add_user("U0456EFGH", "bob_human", display_name="bob_human")
    world.letta.set_delay(alice, 2.0)
    busy, _ = world.bridge.mention("a slow question elsewhere", crew.channel)
    world.letta.wait_for(lambda: len(agent_inputs(world, alice)) == 1, timeout=10)
    root_ts = world.slack.add_message(crew.channel, "bob's thread about lunch", user="U0456EFGH")
    oops = mention_event("oops, wrong place", channel=crew.channel, thread_ts=root_ts)
    world.slack.add_message(crew.channel, oops["text"], ts=oops["ts"], thread_ts=root_ts)
    assert world.bridge.post(event_body(oops)).status_code == 200  # it waits behind the slow one
    if taken_back_by == "stop":
        stop = mention_event("stop", channel=crew.channel, thread_ts=root_ts)
        assert world.bridge.post(event_body(stop)).status_code == 200
    else:
        assert world.bridge.post(_deleted(oops, crew.channel)).status_code == 200
    wait_done(world, crew.channel, busy["ts"])
    world.letta.set_delay(alice, 0.0)
    reply_in_thread(world, crew.channel, root_ts, "pizza at noon?", user="U0456EFGH")
    after, _ = world.bridge.mention("next question", crew.channel)  # runs after anything the chatter became
    wait_done(world, crew.channel, after["ts"])
    asked = agent_inputs(world, alice)[1:]
    assert len(asked) == 1 and asked[0].endswith("next question"), asked


def test_chatter_in_a_thread_told_it_is_not_connected_is_not_sent_once_it_is(tmp_path: Path) -> None:
    """The notice asked for a new mention: replies there after the channel is connected stay the people's."""
    with open_world("bridge", tmp_path) as world:
        crew = world.crew(("alice",))
        world.slack.add_channel(crew.channel, "chan-x")
        root, _ = world.bridge.mention("hello?", crew.channel)  # not connected yet
        world.slack.wait_for(lambda: any("not connected" in str(p.args.get("text"))
                                         for p in world.slack.posts(crew.channel, root["ts"])), 10)
        world.connect(crew.channel, crew.group_id)
        reply_in_thread(world, crew.channel, root["ts"], "ok whatever, lunch?")  # no mention
        after, _ = world.bridge.mention("real question", crew.channel)
        wait_done(world, crew.channel, after["ts"])
        asked = agent_inputs(world, crew.agents["alice"])
        assert len(asked) == 1 and asked[0].endswith("real question"), asked
