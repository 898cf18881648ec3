"""A mention's lines reach the agents as the person wrote them (a pasted code block, a list), each behind "> "
under the context prefix so that none passes for another speaker's."""

from __future__ import annotations

from tests.e2e.conftest import World
from tests.e2e.test_mentions import thread_posts
from tests.e2e.test_threads import agent_inputs
from tests.fakes.signing import event_body, mention_event


def test_a_pasted_code_block_reaches_the_agents_with_its_lines_and_indentation(world: World) -> None:
    crew = world.bound_crew(("alice",))
    event = mention_event("x", channel=crew.channel)
    event["text"] = "<@U0BOTABCD> why does this fail?\n```\ndef f():\n    if x:\n        return 1\n```"
    assert world.bridge.post(event_body(event)).status_code == 200
    thread_posts(world, crew.channel, event["ts"], 1)
    sent = agent_inputs(world, crew.agents["alice"])[-1]
    quoted = "> why does this fail?\n> ```\n> def f():\n>     if x:\n>         return 1\n> ```"
    assert sent.endswith(" on Slack]\n" + quoted), sent
