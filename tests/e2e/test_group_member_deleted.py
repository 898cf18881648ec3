"""A Letta group one of whose members was deleted on Letta after the channel was connected: real 0.16.8 keeps
the deleted id in the group record's `agent_ids`. The others still answer, and the channel connects again."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import new_channel, open_world
from tests.e2e.harness import run_cli
from tests.e2e.test_mentions import wait_done


def test_a_supervisor_group_whose_added_member_was_deleted_still_answers_and_connects(tmp_path: Path) -> None:
    """Before: the deleted member's lookup (404) stopped every turn of the channel, asking nobody ('Letta does
    not know the group'), and connecting the group again was refused."""
    with open_world("bridge", tmp_path) as world:
        agents = {n: world.letta.add_agent(n) for n in ("alice", "bob")}
        boss = world.letta.add_agent("boss")
        group = world.letta.add_group(list(agents.values()), manager_type="supervisor", manager_agent_id=boss)
        channel = new_channel()
        world.slack.add_channel(channel, "sup")
        world.connect(channel, group)
        carol = world.letta.add_agent("carol")
        world.letta.set_group_members(group, [*agents.values(), carol])
        world.letta.remove_agent(carol)  # as real 0.16.8 does, the group record still lists carol
        event, _ = world.bridge.mention("hello all", channel)
        wait_done(world, channel, event["ts"])
        posts = world.slack.posts(channel, event["ts"])
        assert sorted(p.args.get("username") or "" for p in posts) == ["alice", "bob", "boss"], posts
        done = run_cli(world.env, "channels", "connect", channel, group)
        assert done.returncode == 0, done.stderr
