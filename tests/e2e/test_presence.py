"""A turn's working signs (where Slack's agent sessions are refused) at the default SLACK_WORKING_AFTER_SECONDS:
a turn answered at once shows only its replies and the done reaction; a slow one shows the working reaction,
the Stop button and the status line while it works, and takes back the reaction and the status line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import World, open_world

WORKING_AFTER = 1.0  # the bridge's default (tests/unit/test_config.py pins it)
SIGN_METHODS = ("reactions.add", "reactions.remove", "chat.postEphemeral", "assistant.threads.setStatus")


@pytest.fixture(scope="module", params=["server", "bridge"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"presence-{request.param}")
    with open_world(str(request.param), tmp, SLACK_WORKING_AFTER_SECONDS=str(WORKING_AFTER)) as world:
        yield world


def signs(world: World, channel: str, ts: str) -> list[tuple[str, str]]:
    """The turn's sign calls in order: (method, reaction name or status text or the ephemeral's text)."""
    out = []
    for call in world.slack.calls:
        if call.method not in SIGN_METHODS:
            continue
        args: dict[str, Any] = call.args
        if call.method.startswith("reactions.") and args.get("timestamp") == ts:
            out.append((call.method, str(args["name"])))
        elif call.method == "chat.postEphemeral" and args.get("thread_ts") == ts:
            out.append((call.method, "stop"))
        elif call.method == "assistant.threads.setStatus" and args.get("thread_ts") == ts:
            out.append((call.method, str(args.get("status"))))
    return out


def finished(world: World, channel: str, ts: str) -> None:
    marks = {"white_check_mark", "warning"}
    world.slack.wait_for(lambda: bool(marks & world.slack.reactions(channel, ts)), timeout=15)


def test_a_turn_answered_at_once_shows_no_working_signs(world: World) -> None:
    crew = world.bound_crew(("alice", "bob"))
    event, response = world.bridge.mention("quick one", crew.channel)
    assert response.status_code == 200
    finished(world, crew.channel, event["ts"])
    assert len(world.slack.posts(crew.channel, event["ts"])) == 2
    assert signs(world, crew.channel, event["ts"]) == [("reactions.add", "white_check_mark")]


def test_a_slow_turn_shows_its_signs_after_the_delay_and_takes_them_back(world: World) -> None:
    crew = world.bound_crew(("alice", "bob"))
    world.letta.set_delay(crew.agents["alice"], WORKING_AFTER + 1.0)
    sent = time.monotonic()
    event, response = world.bridge.mention("slow one", crew.channel)
    assert response.status_code == 200
    ts = event["ts"]
    world.slack.wait_for(lambda: "eyes" in world.slack.reactions(crew.channel, ts), timeout=5)
    shown = next(c.at for c in world.slack.calls_to("reactions.add") if c.args.get("timestamp") == ts)
    assert shown - sent >= WORKING_AFTER  # not before the delay
    assert world.slack.posts(crew.channel, ts) == []  # still working: nothing posted yet
    finished(world, crew.channel, ts)
    assert signs(world, crew.channel, ts) == [
        ("reactions.add", "eyes"),
        ("chat.postEphemeral", "stop"),
        ("assistant.threads.setStatus", "alice and bob are thinking..."),
        ("reactions.remove", "eyes"),
        ("assistant.threads.setStatus", ""),
        ("reactions.add", "white_check_mark"),
    ]
    assert world.slack.reactions(crew.channel, ts) == {"white_check_mark"}
