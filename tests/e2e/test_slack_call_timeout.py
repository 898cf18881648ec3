"""Every Slack Web API call is answered within slack_sdk's 30 s or taken for no answer: the bridge shares one
aiohttp session for its calls, to which slack_sdk does not apply its timeout, so a post Slack took and never
answered held its turn for aiohttp's default of 300 s before the thread was read back to see whether it landed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import open_world


@pytest.mark.slow
def test_a_post_slack_never_answers_is_looked_for_in_the_thread_after_30_s(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        crew = world.bound_crew(("alice",))
        world.slack.answer_delays["chat.postMessage"] = 120.0  # the post lands; Slack's answer never comes in time
        root, _ = world.bridge.mention("hello", crew.channel)
        deadline = time.monotonic() + 50
        while "slack post outcome unknown" not in world.bridge.logs():
            assert time.monotonic() < deadline, world.bridge.logs()[-3000:]
            time.sleep(0.5)
        world.slack.answer_delays.clear()
        assert "reason=TimeoutError" in world.bridge.logs() or "reason=ServerTimeoutError" in world.bridge.logs()
        world.slack.wait_for(lambda: "white_check_mark" in world.slack.reactions(crew.channel, root["ts"]), 30)
        assert [p.args.get("username") for p in world.slack.posts(crew.channel, root["ts"])] == ["alice"]
