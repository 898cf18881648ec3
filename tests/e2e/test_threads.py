"""A Slack thread is a conversation: follow-ups without a mention, earlier thread context once, status line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bridge.manifest import manifest
from tests.e2e.conftest import World, open_world
from tests.e2e.test_mentions import thread_posts, wait_done
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack_delivery import bot_events, delivered
from tests.quoting import heard


def reply_in_thread(
    world: World, channel: str, thread_ts: str, text: str, user: str = "U0123ABCD", kind: str = "channel"
) -> dict[str, Any]:
    """A person's thread reply, sent to the bridge only if Slack would send it to an app installed from the
    bridge's manifest with the fake's scopes (`kind` is its conversation's `channel_type`)."""
    ts = next_ts()
    event = {"user": user, "type": "message", "ts": ts, "text": text, "team": "T0123ABCD", "thread_ts": thread_ts,
             "parent_user_id": user, "channel": channel, "event_ts": ts, "channel_type": kind}
    world.slack.add_message(channel, text, user=user, ts=ts, thread_ts=thread_ts)
    if delivered(event, bot_events(manifest()), world.slack.scopes):
        assert world.bridge.post(event_body(event)).status_code == 200
    return event


def agent_inputs(world: World, agent_id: str) -> list[str]:
    return [i.text for i in world.letta.inputs if i.agent_id == agent_id]


def test_a_reply_in_a_thread_the_bot_answered_needs_no_mention(world: World) -> None:
    crew = world.bound_crew(("alice",))
    root, _ = world.bridge.mention("first question", crew.channel)
    wait_done(world, crew.channel, root["ts"])
    follow = reply_in_thread(world, crew.channel, root["ts"], "and a follow-up, no mention")
    posts = thread_posts(world, crew.channel, root["ts"], 2)
    assert [p.args.get("username") for p in posts] == ["alice", "alice"]
    assert agent_inputs(world, crew.agents["alice"])[-1].endswith("and a follow-up, no mention")
    wait_done(world, crew.channel, follow["ts"])
    assert world.slack.reactions(crew.channel, follow["ts"]) == {"white_check_mark"}


def test_a_stop_word_answering_an_agent_in_an_idle_thread_is_said_to_the_agents(world: World) -> None:
    """An agent asks "reply proceed or cancel"; `cancel` (a stop word), with nothing running in the thread, was
    taken for a stop of nothing and swallowed: no turn, no answer. With a turn running it still stops it
    (test_sessions.py); a mention saying `stop` is still a stop."""
    crew = world.bound_crew(("alice",))
    world.letta.set_reply(crew.agents["alice"], "About to delete the old records. Reply *proceed* or *cancel*.")
    root, _ = world.bridge.mention("clean up the old records", crew.channel)
    wait_done(world, crew.channel, root["ts"])
    answer = reply_in_thread(world, crew.channel, root["ts"], "cancel")
    wait_done(world, crew.channel, answer["ts"])
    assert agent_inputs(world, crew.agents["alice"])[-1].endswith("cancel")
    assert len(thread_posts(world, crew.channel, root["ts"], 2)) == 2


def test_a_reply_in_the_bots_thread_in_a_group_dm_needs_no_mention(world: World) -> None:
    """A group DM (several people and the bot) connected with /letta connect behaves as a private channel: its
    thread follow-ups used to never reach the bridge, since the app subscribed to no message.mpim event."""
    crew = world.crew(("alice",))
    group_dm = "G" + crew.channel[1:]  # a group DM's id, as Slack's message.mpim payload shows one
    world.slack.add_channel(group_dm, "mpdm-maria--bob_human--letta-1", is_mpim=True)
    world.connect(group_dm, crew.group_id)
    root, _ = world.bridge.mention("first question", group_dm)
    wait_done(world, group_dm, root["ts"])
    follow = reply_in_thread(world, group_dm, root["ts"], "and a follow-up, no mention", kind="mpim")
    wait_done(world, group_dm, follow["ts"])
    assert agent_inputs(world, crew.agents["alice"])[-1].endswith("and a follow-up, no mention")
    assert [p.args.get("username") for p in thread_posts(world, group_dm, root["ts"], 2)] == ["alice", "alice"]


def test_first_mention_in_a_group_dm_thread_brings_its_earlier_messages(world: World) -> None:
    """As in a private channel, the thread is read (conversations.replies, with mpim:history) for context."""
    crew = world.crew(("alice",))
    group_dm = "G" + crew.channel[1:]
    world.slack.add_channel(group_dm, "mpdm-maria--bob_human--letta-1", is_mpim=True)
    world.connect(group_dm, crew.group_id)
    world.slack.add_user("U0456EFGH", "bob_human", display_name="bob_human")
    root_ts = world.slack.add_message(group_dm, "Lunch at noon or one?", user="U0456EFGH")
    from tests.fakes.signing import mention_event

    mention = mention_event("which suits the team?", channel=group_dm, thread_ts=root_ts)
    assert world.bridge.post(event_body(mention)).status_code == 200
    thread_posts(world, group_dm, root_ts, 1)
    sent = agent_inputs(world, crew.agents["alice"])[-1]
    assert heard("bob_human", "Lunch at noon or one?") in sent


def test_replies_in_threads_the_bot_never_joined_are_ignored(world: World) -> None:
    crew = world.bound_crew(("alice",))
    root_ts = world.slack.add_message(crew.channel, "people talking")
    before = len(world.letta.requests)
    reply_in_thread(world, crew.channel, root_ts, "just people here")
    time.sleep(0.5)
    assert len(world.letta.requests) == before
    assert world.slack.posts(crew.channel, root_ts) == []


def test_a_mention_that_is_also_a_thread_reply_is_one_turn(world: World) -> None:
    crew = world.bound_crew(("alice",))
    root, _ = world.bridge.mention("start", crew.channel)
    wait_done(world, crew.channel, root["ts"])
    from tests.fakes.signing import mention_event

    mention = mention_event("again, with a mention", channel=crew.channel, thread_ts=root["ts"])
    twin = dict(mention, type="message", channel_type="channel")
    assert world.bridge.post(event_body(twin)).status_code == 200
    assert world.bridge.post(event_body(mention)).status_code == 200
    thread_posts(world, crew.channel, root["ts"], 2)
    time.sleep(0.5)
    assert len(agent_inputs(world, crew.agents["alice"])) == 2
    assert len([p for p in world.slack.posts(crew.channel, root["ts"]) if p.args.get("username")]) == 2


def test_first_mention_in_an_existing_thread_brings_its_earlier_messages_once(world: World) -> None:
    crew = world.bound_crew(("alice",))
    world.slack.add_user("U0456EFGH", "bob_human", display_name="bob_human")
    root_ts = world.slack.add_message(crew.channel, "Shall we ship on Friday?", user="U0456EFGH")
    world.slack.add_message(crew.channel, "Only if the tests are green &amp; fast", user="U0123ABCD", thread_ts=root_ts)
    from tests.fakes.signing import mention_event

    mention = mention_event("what do you think?", channel=crew.channel, thread_ts=root_ts)
    assert world.bridge.post(event_body(mention)).status_code == 200
    thread_posts(world, crew.channel, root_ts, 1)
    sent = agent_inputs(world, crew.agents["alice"])[-1]
    assert "Earlier in this Slack thread" in sent
    assert heard("bob_human", "Shall we ship on Friday?") in sent
    assert heard("maria", "Only if the tests are green & fast") in sent
    assert sent.index("Shall we ship") < sent.index("what do you think?")
    wait_done(world, crew.channel, mention["ts"])
    reply_in_thread(world, crew.channel, root_ts, "and now?")
    thread_posts(world, crew.channel, root_ts, 2)
    assert "Earlier in this Slack thread" not in agent_inputs(world, crew.agents["alice"])[-1]


@pytest.mark.parametrize("runner", ["server", "bridge"])
def test_the_thread_shows_who_is_thinking_and_clears_it(runner: str, tmp_path: Path) -> None:
    """A bridge of its own: the signs' budget (10 turns at once, then one a second) is the process's, and the
    module's shared bridge may have spent it on the tests before this one."""
    with open_world(runner, tmp_path) as world:
        crew = world.bound_crew(("alice", "bob"))
        event, _ = world.bridge.mention("status?", crew.channel)
        wait_done(world, crew.channel, event["ts"])
        statuses = [c.args.get("status") for c in world.slack.calls_to("assistant.threads.setStatus")
                    if c.args.get("thread_ts") == event["ts"]]
        assert statuses == ["alice and bob are thinking...", ""]


def test_the_thread_context_waits_for_a_turn_that_reached_the_agents(world: World) -> None:
    """The first mention inside a people's thread came before the channel was connected: the bridge said how to
    connect it, and no agent heard anything. Asked again once connected, the agents used to get no thread context
    (an earlier turn of the thread existed), so they answered blind to the thread."""
    crew = world.crew(("alice",))
    world.slack.add_channel(crew.channel, f"chan-{crew.channel.lower()}")
    world.slack.add_user("U0456EFGH", "bob_human", display_name="bob_human")
    root_ts = world.slack.add_message(crew.channel, "Shall we ship on Friday?", user="U0456EFGH")
    from tests.fakes.signing import mention_event

    unbound = mention_event("what do you think?", channel=crew.channel, thread_ts=root_ts)
    assert world.bridge.post(event_body(unbound)).status_code == 200
    thread_posts(world, crew.channel, root_ts, 1)  # how to connect the channel
    assert agent_inputs(world, crew.agents["alice"]) == []
    world.connect(crew.channel, crew.group_id)
    again = mention_event("now, what do you think?", channel=crew.channel, thread_ts=root_ts)
    assert world.bridge.post(event_body(again)).status_code == 200
    thread_posts(world, crew.channel, root_ts, 2)
    sent = agent_inputs(world, crew.agents["alice"])[-1]
    assert "Earlier in this Slack thread" in sent
    assert heard("bob_human", "Shall we ship on Friday?") in sent


def test_a_waiting_follow_up_edited_to_address_a_colleague_is_taken_back(tmp_path: Path) -> None:
    """revAE: a fresh reply opening with a colleague's mention is left to them; a waiting one edited into that
    was still sent to both agents, who answered it in the thread."""
    from tests.e2e.test_channel_life import _changed

    with open_world("bridge", tmp_path) as world:
        world.slack.add_user("U0456EFGH", "bob_human", display_name="bob_human")
        crew = world.bound_crew(("alice", "bob"))
        root, _ = world.bridge.mention("first", crew.channel)
        wait_done(world, crew.channel, root["ts"])
        world.letta.set_delay(crew.agents["alice"], 1.5)
        reply_in_thread(world, crew.channel, root["ts"], "follow one")
        waiting = reply_in_thread(world, crew.channel, root["ts"], "follow two")
        world.letta.wait_for(lambda: any("follow one" in t for t in agent_inputs(world, crew.agents["alice"])), 10)
        edited = _changed(waiting, crew.channel, "<@U0456EFGH> can you take this one?", thread_ts=root["ts"])
        assert world.bridge.post(edited).status_code == 200
        world.letta.wait_for(lambda: sum("follow one" in i.text for i in world.letta.inputs) == 2, 15)
        time.sleep(2)
        assert not any("take this one" in i.text or "follow two" in i.text for i in world.letta.inputs)
