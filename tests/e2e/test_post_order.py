"""The next agent is asked while the last reply is still being posted (bridge/post_order.py), once the channel has
shown it takes posts; the thread reads in order either way. Slack's answers are slowed down here, as a real
round trip from a cloud region would be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.approval_rig import actions
from tests.e2e.test_guarantees import Rig, rig

POST_ANSWER = 1.0  # seconds the fake Slack takes to answer chat.postMessage (the post itself lands at once)


@pytest.fixture
def slow_slack(tmp_path: Path) -> Iterator[Rig]:
    r = rig(tmp_path, "0.16.8")  # the bridge runner: it asks alice, bob and carol in turn
    r.slack.answer_delays["chat.postMessage"] = POST_ANSWER
    yield r
    r.bridge.stop()
    r.letta.stop()
    r.slack.stop()


def _asked_after_alice_was_answered(r: Rig, event: dict[str, str], said: str, agent: str) -> float:
    """How long after the fake answered alice's post in the event's thread the agent's send began (negative:
    before)."""
    alice = next(p for p in r.slack.posts(r.channel, event["ts"]) if p.args.get("username") == "alice")
    asked = [i.started for i in r.letta.inputs if i.agent_name == agent and said in i.text]
    assert len(asked) == 1, f"{agent} asked {len(asked)} times"
    return asked[0] - (alice.at + POST_ANSWER)


def test_later_agents_are_asked_while_a_reply_is_posted_once_the_channel_took_a_post(slow_slack: Rig) -> None:
    r = slow_slack
    first, _ = r.bridge.mention("first, thread one", r.channel)
    r.slack.wait_for(lambda: len(r.replies(first["ts"])) == 3, 20)
    # Nothing posted in this channel yet: bob waits for alice's post to land (a channel the bot cannot post in
    # would otherwise cost an agent's turn nobody sees).
    assert _asked_after_alice_was_answered(r, first, "thread one", "bob") >= 0
    second, _ = r.bridge.mention("second, thread two", r.channel)
    r.slack.wait_for(lambda: len(r.replies(second["ts"])) == 3, 20)
    assert _asked_after_alice_was_answered(r, second, "thread two", "bob") < 0, "bob waited for alice's post"
    assert r.replies(first["ts"]) == r.replies(second["ts"]) == ["alice", "bob", "carol"]
    assert [r.turns_of(n) for n in ("alice", "bob", "carol")] == [2, 2, 2]


def test_an_approval_card_waits_for_every_part_of_the_reply_before_it(tmp_path: Path) -> None:
    """Bob is asked while alice's long reply is posted; the card his tool call needs, a new message in the thread,
    comes after her last part."""
    r = rig(tmp_path, "0.16.8", ("alice", "bob"), APPROVAL_TIMEOUT_SECONDS="1")
    try:
        r.letta.set_reply(r.agents["alice"], "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 60 for i in range(12)))
        first, _ = r.bridge.mention("first", r.channel)  # the channel takes posts: from now on bob is asked at once
        r.slack.wait_for(lambda: r.replies(first["ts"])[-1:] == ["bob"], 20)
        r.slack.answer_delays["chat.postMessage"] = POST_ANSWER
        r.letta.ask_approval(r.agents["bob"], ("shout", '{"message": "hi"}'))
        second, _ = r.bridge.mention("second", r.channel)
        r.slack.wait_for(lambda: r.replies(second["ts"])[-1:] == ["bob"] and len(r.letta.approval_decisions()) == 1, 30)

        posts = r.slack.posts(r.channel, second["ts"])
        card = next(i for i, p in enumerate(posts) if actions(p))
        alice = [p for p in posts[:card] if p.args.get("username") == "alice"]
        assert len(alice) >= 2 and all(p.args.get("username") == "alice" for p in posts[:card])
        bob_asked = next(i.started for i in r.letta.inputs if i.agent_name == "bob" and "second" in i.text)
        assert bob_asked < alice[-1].at + POST_ANSWER, "bob was not asked while alice's reply was posted"
        assert posts[card].at >= alice[-1].at + POST_ANSWER, "the card came in between alice's parts"
    finally:
        r.bridge.stop()
        r.letta.stop()
        r.slack.stop()


def test_a_post_refused_for_good_cancels_the_agent_asked_meanwhile(tmp_path: Path) -> None:
    """The bot was removed from a channel it had posted in: alice's reply is refused for good while bob is being
    asked. Bob's run would answer nobody: it is cancelled on Letta, and carol is never asked."""
    r = rig(tmp_path, "0.16.8")
    try:
        first, _ = r.bridge.mention("first", r.channel)
        r.slack.wait_for(lambda: len(r.replies(first["ts"])) == 3, 20)
        r.letta.set_delay(r.agents["bob"], 5.0)
        r.slack.fail_next("chat.postMessage", error="not_in_channel", times=10)
        r.slack.answer_delays["chat.postMessage"] = POST_ANSWER  # refused after a round trip, as Slack does
        second, _ = r.bridge.mention("second", r.channel)
        r.slack.wait_for(lambda: "warning" in r.slack.reactions(r.channel, second["ts"]), 20)
        r.letta.wait_for(lambda: all(i.finished for i in r.letta.inputs), 10)
        [bob] = [i for i in r.letta.inputs if i.agent_name == "bob" and "second" in i.text]
        assert bob.cancelled, "bob's run went on for a reply nobody could see"
        assert r.turns_of("carol") == 1
    finally:
        r.bridge.stop()
        r.letta.stop()
        r.slack.stop()
