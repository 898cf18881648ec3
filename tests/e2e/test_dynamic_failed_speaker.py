"""A dynamic group's manager is not told that a member whose send failed "just spoke" (reviewer revFD)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import new_channel, open_world
from tests.e2e.harness import run_cli
from tests.e2e.test_mentions import wait_done
from tests.e2e.test_patterns import received


def test_a_dynamic_manager_is_not_told_a_failed_member_just_spoke(tmp_path: Path) -> None:
    """docs/patterns.md: "(bob just spoke)" names the member who spoke; one whose send failed said nothing."""
    with open_world("bridge", tmp_path) as world:
        agents = {n: world.letta.add_agent(n) for n in ("alice", "bob")}
        boss = world.letta.add_agent("boss")
        channel = new_channel()
        world.slack.add_channel(channel, "dyn")
        done = run_cli(world.env, "channels", "connect", channel, *agents.values(), "--pattern", "dynamic",
                       "--manager", boss, "--max-turns", "3")
        assert done.returncode == 0, done.stderr
        world.letta.set_reply(boss, lambda text: "bob" if "Members: bob" in text else "alice")
        world.letta.remove_agent(agents["alice"])  # deleted on Letta after the channel was connected
        event, _ = world.bridge.mention("hello all", channel)
        wait_done(world, channel, event["ts"])
        texts = [(p.args.get("username"), p.args["text"]) for p in world.slack.posts(channel, event["ts"])]
        assert any(who == "bob" for who, _ in texts), texts
        second_choice = received(world, boss)[1]
        assert "alice just spoke" not in second_choice, second_choice
