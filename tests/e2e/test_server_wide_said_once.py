"""Agents asked at once (a broadcast, a supervisor's workers) that all meet one failure of the Letta server itself
are told of it once in the thread, then who met it too in one note (reviewer revFD): before, once per agent."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import World, new_channel, open_world
from tests.e2e.harness import run_cli
from tests.e2e.test_mentions import wait_done

SENDS = r"/v1/(agents|conversations)/[^/]+/messages(/stream)?"


def connected(world: World, *options: str) -> str:
    """A channel bound to alice, bob and carol with `options`."""
    agents = [world.letta.add_agent(n) for n in ("alice", "bob", "carol")]
    channel = new_channel()
    world.slack.add_channel(channel, "cast")
    done = run_cli(world.env, "channels", "connect", channel, *agents, *options)
    assert done.returncode == 0, done.stderr
    return channel


def met_first(note: str, end: str = ".") -> bool:
    """Whether the note says two of alice, bob and carol met the same failure as the third, whose was said first
    (which answers first is the fakes' doing)."""
    found = re.fullmatch(r"(\w+) and (\w+) met the same failure as (\w+)" + re.escape(end), note)
    return found is not None and sorted(found.groups()) == ["alice", "bob", "carol"]


def test_a_broadcast_with_a_rejected_key_says_so_once(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        channel = connected(world, "--broadcast")
        world.letta.fail_next("POST", SENDS, 401, body={"detail": "Unauthorized"}, times=3)
        event, _ = world.bridge.mention("hello all", channel)
        wait_done(world, channel, event["ts"])
        texts = [p.args["text"] for p in world.slack.posts(channel, event["ts"])]
        assert len([t for t in texts if "rejected the bridge's API key" in t]) == 1, texts
        assert len(texts) == 2 and met_first(texts[1]), texts


def test_a_broadcast_with_letta_down_says_so_once(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        channel = connected(world, "--broadcast")
        first, _ = world.bridge.mention("hello all", channel)
        wait_done(world, channel, first["ts"])
        world.letta.stop()
        event, _ = world.bridge.mention("again", channel)
        world.slack.wait_for(
            lambda: bool({"white_check_mark", "warning"} & world.slack.reactions(channel, event["ts"])), timeout=60
        )
        texts = [p.args["text"] for p in world.slack.posts(channel, event["ts"])]
        assert len(texts) == 2 and "couldn't reach the Letta server" in texts[0], texts
        assert met_first(texts[1]), texts


def test_a_supervisor_with_a_rejected_key_says_so_once_naming_its_manager(tmp_path: Path) -> None:
    """Before: once per worker, then 'boss was not asked, for the same reason'."""
    with open_world("bridge", tmp_path) as world:
        boss = world.letta.add_agent("boss")
        channel = connected(world, "--pattern", "supervisor", "--manager", boss)
        world.letta.fail_next("POST", SENDS, 401, body={"detail": "Unauthorized"}, times=3)
        event, _ = world.bridge.mention("hello all", channel)
        wait_done(world, channel, event["ts"])
        texts = [p.args["text"] for p in world.slack.posts(channel, event["ts"])]
        assert len(texts) == 2 and "rejected the bridge's API key" in texts[0], texts
        assert met_first(texts[1], "; boss was not asked because of it."), texts
