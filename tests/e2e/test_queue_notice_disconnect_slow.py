"""A thread's queue notice, its only waiting mention ended unrun by a disconnect while Slack is slow to post
the thread's "disconnected" notice, must say it will not be answered (docs/mentions.md)."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.notice_words import UNBOUND_NOTICE
from tests.e2e.conftest import open_world
from tests.e2e.harness import run_cli
from tests.e2e.test_threads import agent_inputs


def test_queue_notice_of_a_thread_ended_by_a_disconnect_says_so_when_slack_is_slow(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        crew = world.bound_crew(("alice",))
        alice = crew.agents["alice"]
        world.letta.set_delay(alice, 9.0)
        world.bridge.mention("the first question", crew.channel)
        world.letta.wait_for(lambda: len(agent_inputs(world, alice)) == 1, 10)
        other, _ = world.bridge.mention("a question of its own", crew.channel)  # waits behind the first

        def thread() -> list[str]:
            return [m["text"] for m in world.slack.messages(crew.channel, other["ts"])]

        world.slack.wait_for(lambda: any(t.startswith("Queued:") for t in thread()), 10)
        done = run_cli(world.env, "channels", "disconnect", crew.channel)
        assert done.returncode == 0, done.stderr
        time.sleep(5.5)  # the notice is old enough to be looked at again
        world.slack.answer_delays["chat.postMessage"] = 1.5  # Slack slow to take posts a moment
        world.slack.wait_for(lambda: any("disconnected from Letta" in t for t in thread()), 20)
        world.slack.answer_delays.clear()
        time.sleep(4)
        assert len(agent_inputs(world, alice)) == 1
        assert UNBOUND_NOTICE in thread(), thread()
