"""A waiting mention edited to speak to someone else while its queue notice is being posted (Slack slow a
moment): its notice must say it was edited away, not that the message was deleted (docs/mentions.md)."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.notice_words import EDITED_AWAY_NOTICE
from tests.e2e.conftest import open_world
from tests.e2e.test_channel_life import _changed
from tests.e2e.test_threads import agent_inputs


def test_notice_of_a_mention_edited_away_while_the_notice_was_posted_says_edited(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        crew = world.bound_crew(("alice",))
        alice = crew.agents["alice"]
        world.letta.set_delay(alice, 4.0)
        world.bridge.mention("first question", crew.channel)
        world.letta.wait_for(lambda: len(agent_inputs(world, alice)) == 1, 10)
        world.slack.answer_delays["chat.postMessage"] = 1.5  # Slack slow to take posts a moment
        second, _ = world.bridge.mention("second question", crew.channel)
        time.sleep(0.6)  # its queue notice is on its way
        handed = _changed(second, crew.channel, "<@U0456EFGH> could you take this one instead?")
        assert world.bridge.post(handed).status_code == 200
        time.sleep(1.5)
        world.slack.answer_delays.clear()

        def thread() -> list[str]:
            return [m["text"] for m in world.slack.messages(crew.channel, second["ts"])]

        world.slack.wait_for(lambda: thread() and not thread()[0].startswith("Queued"), 15)
        assert thread() == [EDITED_AWAY_NOTICE], thread()
        assert len(agent_inputs(world, alice)) == 1
