"""A mention's lines reach the agents as the person wrote them (a pasted code block, a list), each behind "> "
under the context prefix so that none passes for another speaker's."""

from __future__ import annotations

from tests.e2e.conftest import World
from tests.e2e.test_mentions import thread_posts
from tests.e2e.test_threads import agent_inputs
from tests.fakes.signing import event_body, mention_event


def sent_for_mention(world: World, text: str) -> str:
    """What the agent of a fresh one-agent channel is sent for a mention whose Slack text is `text`."""
    crew = world.bound_crew(("alice",))
    event = mention_event("x", channel=crew.channel)
    event["text"] = text
    assert world.bridge.post(event_body(event)).status_code == 200
    thread_posts(world, crew.channel, event["ts"], 1)
    return agent_inputs(world, crew.agents["alice"])[-1]


def test_a_pasted_code_block_reaches_the_agents_with_its_lines_and_indentation(world: World) -> None:
    sent = sent_for_mention(world, "<@U0BOTABCD> why does this fail?\n```\ndef f():\n    if x:\n        return 1\n```")
    quoted = "> why does this fail?\n> ```\n> def f():\n>     if x:\n>         return 1\n> ```"
    assert sent.endswith(" on Slack]\n" + quoted), sent
