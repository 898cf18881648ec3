"""One mention, end to end, on both runners and both databases: the right Letta requests, each agent's reply in
the thread."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import World, new_channel, world_fixture
from tests.e2e.harness import body_json
from tests.fakes.signing import event_body, signed_headers
from tests.quoting import said


@pytest.fixture(scope="module", params=["server", "bridge", "server-postgres", "bridge-postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from world_fixture(request, tmp_path_factory)


def thread_posts(world: World, channel: str, thread_ts: str, count: int, timeout: float = 10.0) -> list[Any]:
    world.slack.wait_for(lambda: len(world.slack.posts(channel, thread_ts)) >= count, timeout)
    return world.slack.posts(channel, thread_ts)


def wait_done(world: World, channel: str, ts: str) -> None:
    world.slack.wait_for(lambda: bool({"white_check_mark", "warning"} & world.slack.reactions(channel, ts)), timeout=10)


def letta_sends_to(world: World, ids: list[str]) -> list[Any]:
    return [r for r in world.letta.sends() if world.letta.asked(r) in ids]


def test_each_agent_answers_in_the_thread_under_its_name_in_order(world: World) -> None:
    crew = world.bound_crew()
    event, response = world.bridge.mention("what should we ship first? <soon> & fast", crew.channel)
    assert response.status_code == 200
    posts = thread_posts(world, crew.channel, event["ts"], 3)
    wait_done(world, crew.channel, event["ts"])
    assert [(p.args["username"], p.args["text"]) for p in posts] == [
        ("alice", "alice says hi"),
        ("bob", "bob says hi"),
        ("carol", "carol says hi"),
    ]
    assert world.slack.reactions(crew.channel, event["ts"]) == {"white_check_mark"}
    assert [c.args["name"] for c in world.slack.calls_to("reactions.add") if c.args["timestamp"] == event["ts"]] == [
        "eyes",
        "white_check_mark",
    ]

    sends = letta_sends_to(world, [crew.group_id, *crew.agents.values()])
    if world.runner == "server":
        assert [s.path for s in sends] == [f"/v1/groups/{crew.group_id}/messages/stream"]
    else:
        # agent-direct mode: each agent's own thread, which a server with Redis locks
        assert [(s.path, world.letta.asked(s)) for s in sends] == [
            ("/v1/conversations/default/messages", crew.agents[n]) for n in ("alice", "bob", "carol")
        ]
    for send in sends:
        [message] = send.body["messages"]
        assert message["role"] == "user" and message["name"] == "maria"
        assert message["content"][0]["type"] == "text"
        assert message["content"][0]["text"].endswith("what should we ship first? <soon> & fast")
        last_line = message["content"][0]["text"].splitlines()[-1]
        assert last_line.startswith(f"[maria in #chan-{crew.channel.lower()} on Slack] ")
        assert len(message["otid"]) == 36
    assert len({s.body["messages"][0]["otid"] for s in sends}) == 1
    assert world.letta.overlaps == []


def test_bridge_run_agents_see_the_group_replies_they_missed(world: World) -> None:
    crew = world.bound_crew()
    ids = list(crew.agents.values())
    first, _ = world.bridge.mention("round one", crew.channel)
    wait_done(world, crew.channel, first["ts"])
    second, _ = world.bridge.mention("round two", crew.channel)
    wait_done(world, crew.channel, second["ts"])
    if world.runner == "server":
        assert len(letta_sends_to(world, [crew.group_id])) == 2
        return
    received = {(i.agent_name, i.text.splitlines()[-1][-9:]): i.text for i in world.letta.inputs if i.agent_id in ids}
    prefix = f"[maria in #chan-{crew.channel.lower()} on Slack] "
    assert received[("alice", "round one")] == prefix + "round one"
    header = "Replies in your group since you last spoke:"
    a, b, c = (said(n, f"{n} says hi") for n in ("alice", "bob", "carol"))
    assert received[("bob", "round one")] == f"{header}\n{a}\n\n{prefix}round one"
    assert received[("carol", "round one")] == f"{header}\n{a}\n{b}\n\n{prefix}round one"
    assert received[("alice", "round two")] == f"{header}\n{b}\n{c}\n\n{prefix}round two"
    assert received[("bob", "round two")] == f"{header}\n{c}\n{a}\n\n{prefix}round two"


def test_a_mention_inside_a_thread_is_answered_in_that_thread(world: World) -> None:
    crew = world.bound_crew(("alice",))
    root = "1764064800.123456"
    event, _ = world.bridge.mention("follow up", crew.channel, thread_ts=root)
    posts = thread_posts(world, crew.channel, root, 1)
    assert posts[0].args["thread_ts"] == root != event["ts"]


def test_agent_list_binding_always_runs_on_the_bridge(world: World) -> None:
    alice, bob = world.letta.add_agent("alice"), world.letta.add_agent("bob")
    channel = new_channel()
    world.connect(channel, bob, alice)
    event, _ = world.bridge.mention("hello", channel)
    posts = thread_posts(world, channel, event["ts"], 2)
    assert [p.args["username"] for p in posts] == ["bob", "alice"]
    assert [world.letta.asked(s) for s in letta_sends_to(world, [alice, bob])] == [bob, alice]


def test_unbound_channel_gets_one_reply_explaining_how_to_bind(world: World) -> None:
    channel = new_channel()
    before = len(world.letta.requests)
    event, response = world.bridge.mention("anyone there?", channel)
    assert response.status_code == 200
    [post] = thread_posts(world, channel, event["ts"], 1)
    text = post.args["text"]
    # Read in Slack: the slash command, and who may use it there; no command line.
    assert "not connected" in text and "a workspace admin or owner can connect it" in text
    assert "`/letta connect`" in text and "python -m bridge" not in text
    assert len(world.letta.requests) == before


def test_bad_signature_is_refused_with_401_and_no_letta_call(world: World) -> None:
    crew = world.bound_crew(("alice",))
    from tests.fakes.signing import mention_event

    body = event_body(mention_event("sneaky", channel=crew.channel))
    headers = signed_headers("wrong-secret", body, "application/json")
    import httpx

    before = len(world.letta.requests)
    response = httpx.post(f"{world.bridge.url}/slack/events", content=body, headers=headers)
    assert response.status_code == 401
    unsigned = httpx.post(
        f"{world.bridge.url}/slack/events", content=body, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 401
    assert len(world.letta.requests) == before
    assert world.slack.posts(crew.channel) == []


def test_url_verification_is_answered_with_the_challenge(world: World) -> None:
    body = body_json({"token": "t", "challenge": "abc123", "type": "url_verification"})
    response = world.bridge.post(body)
    assert response.status_code == 200 and json.loads(response.text)["challenge"] == "abc123"


def test_bot_messages_and_plain_messages_are_acknowledged_and_ignored(world: World) -> None:
    crew = world.bound_crew(("alice",))
    before = len(world.letta.requests)
    for event in (
        {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "B999",
            "text": "hi",
            "channel": crew.channel,
            "ts": "1764064900.000001",
        },
        {
            "type": "message",
            "user": "U0123ABCD",
            "text": "no mention",
            "channel": crew.channel,
            "ts": "1764064900.000002",
        },
        {
            "type": "app_mention",
            "bot_id": "B999",
            "text": "<@U0BOTABCD> loop?",
            "channel": crew.channel,
            "ts": "1764064900.000003",
        },
    ):
        assert world.bridge.post(event_body(event)).status_code == 200
    assert len(world.letta.requests) == before


def test_a_retried_event_runs_once(world: World) -> None:
    crew = world.bound_crew(("alice",))
    from tests.fakes.signing import mention_event

    event = mention_event("only once", channel=crew.channel)
    body = event_body(event, event_id="EvRETRY0001")
    assert world.bridge.post(body).status_code == 200
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert world.bridge.post(body, timestamp=int(time.time()) + 1, **retry).status_code == 200
    wait_done(world, crew.channel, event["ts"])
    assert len(letta_sends_to(world, [crew.group_id, *crew.agents.values()])) == 1
    assert len(world.slack.posts(crew.channel, event["ts"])) == 1


def test_the_first_reply_is_posted_while_later_agents_still_work(world: World) -> None:
    crew = world.bound_crew(("alice", "bob"))
    world.letta.set_delay(crew.agents["bob"], 1.5)
    event, _ = world.bridge.mention("who is first?", crew.channel)
    posts = thread_posts(world, crew.channel, event["ts"], 1)
    assert posts[0].args["username"] == "alice"
    bob = [i for i in world.letta.inputs if i.agent_id == crew.agents["bob"]]
    assert not bob or bob[0].finished is None, "alice's reply waited for bob"
    assert [p.args["username"] for p in thread_posts(world, crew.channel, event["ts"], 2)] == ["alice", "bob"]
