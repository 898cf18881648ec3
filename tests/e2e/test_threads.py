"""A Slack thread is a conversation: follow-ups without a mention, earlier thread context once, status line."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import World
from tests.e2e.test_mentions import thread_posts, wait_done
from tests.fakes.signing import event_body, next_ts


def reply_in_thread(world: World, channel: str, thread_ts: str, text: str, user: str = "U0123ABCD") -> dict[str, Any]:
    ts = next_ts()
    event = {"user": user, "type": "message", "ts": ts, "text": text, "team": "T0123ABCD", "thread_ts": thread_ts,
             "parent_user_id": user, "channel": channel, "event_ts": ts, "channel_type": "channel"}
    world.slack.add_message(channel, text, user=user, ts=ts, thread_ts=thread_ts)
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
    assert "[bob_human] Shall we ship on Friday?" in sent and "[maria] Only if the tests are green & fast" in sent
    assert sent.index("Shall we ship") < sent.index("what do you think?")
    wait_done(world, crew.channel, mention["ts"])
    reply_in_thread(world, crew.channel, root_ts, "and now?")
    thread_posts(world, crew.channel, root_ts, 2)
    assert "Earlier in this Slack thread" not in agent_inputs(world, crew.agents["alice"])[-1]


def test_the_thread_shows_who_is_thinking_and_clears_it(world: World) -> None:
    crew = world.bound_crew(("alice", "bob"))
    world.letta.set_delay(crew.agents["alice"], 1.5)  # long enough for a status line to matter

    def statuses(ts: str) -> list[str]:
        calls = world.slack.calls_to("assistant.threads.setStatus")
        return [c.args.get("status") for c in calls if c.args.get("thread_ts") == ts]

    event, _ = world.bridge.mention("status?", crew.channel)
    wait_done(world, crew.channel, event["ts"])
    assert statuses(event["ts"]) == ["alice and bob are thinking...", ""]
    world.letta.set_delay(crew.agents["alice"], 0.0)
    quick, _ = world.bridge.mention("quick one?", crew.channel)
    wait_done(world, crew.channel, quick["ts"])
    assert statuses(quick["ts"]) == [], "a turn answered within a second needs no status line"
