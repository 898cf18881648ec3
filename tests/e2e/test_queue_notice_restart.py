"""A queue notice posted before a restart (SIGTERM mid-backlog), its mention deleted after the restart while
it still waits: the notice must say it will not be answered (docs/mentions.md), not keep promising an answer."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.notice_words import WITHDRAWN_NOTICE
from tests.e2e.conftest import open_world
from tests.e2e.test_channel_life import _deleted
from tests.e2e.test_threads import agent_inputs


def test_notice_from_before_a_restart_says_a_deleted_mention_will_not_be_answered(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path, SHUTDOWN_GRACE_SECONDS="0") as world:
        crew = world.bound_crew(("alice",))
        alice = crew.agents["alice"]
        world.letta.set_delay(alice, 8.0)
        first, _ = world.bridge.mention("first question", crew.channel)
        world.letta.wait_for(lambda: len(agent_inputs(world, alice)) == 1, 10)
        second, _ = world.bridge.mention("second question", crew.channel)

        def thread() -> list[str]:
            return [m["text"] for m in world.slack.messages(crew.channel, second["ts"])]

        world.slack.wait_for(lambda: any(t.startswith("Queued") for t in thread()), 10)
        assert world.bridge.stop() == 0  # SIGTERM mid-backlog: the first turn is resumed at the next start
        world.bridge.start(tmp_path / "bridge2.log")
        time.sleep(1)
        assert world.bridge.post(_deleted(second, crew.channel)).status_code == 200
        world.slack.wait_for(lambda: "white_check_mark" in world.slack.reactions(crew.channel, first["ts"]), 30)
        time.sleep(7)
        assert "turn withdrawn" in world.bridge.logs()
        assert [i for i in agent_inputs(world, alice) if "second" in i] == []
        assert thread() == [WITHDRAWN_NOTICE], thread()
