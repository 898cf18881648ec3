"""One channel's refusal of agents.sessions.setStatus (the bot removed from it while a turn there ran) turned
agent sessions off for every channel until a restart, and the log told the operator to declare the app as an agent
(revT). Only a refusal that says the app cannot have sessions gives them up; the others are that turn's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import World, open_world
from tests.e2e.test_live_replies import wait_done


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world("bridge", tmp_path) as w:
        w.slack.agent_app = True
        yield w


def test_one_channels_refusal_does_not_end_sessions_everywhere(world: World) -> None:
    a, b = world.bound_crew(("alice",)), world.bound_crew(("bob",))
    ok, _ = world.bridge.mention("first", a.channel)
    world.slack.wait_for(lambda: world.slack.session_statuses(a.channel, ok["ts"])[-1:] == ["active"], timeout=15)
    world.slack.fail_next("agents.sessions.setStatus", "not_in_channel")
    gone, _ = world.bridge.mention("second", a.channel)
    wait_done(world, a.channel, gone["ts"])
    event, _ = world.bridge.mention("third", b.channel)
    world.slack.wait_for(lambda: world.slack.session_statuses(b.channel, event["ts"])[-1:] == ["active"], timeout=15)
    assert world.slack.session_statuses(b.channel, event["ts"]) == ["processing", "active"]
    assert "Declare the app as an agent" not in world.bridge.logs()
