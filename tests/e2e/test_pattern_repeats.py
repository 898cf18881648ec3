"""An agent asked again in one turn gets only what the group said since it last spoke (docs/patterns.md): with
nothing new (one agent in a round robin, or the others failed) it is not asked again, the person's words a second
time; and in a dynamic group one member's own failure leaves the manager to give the floor to the others."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import new_channel, open_world
from tests.e2e.harness import run_cli
from tests.e2e.test_mentions import wait_done
from tests.e2e.test_patterns import received


def _boom(_text: str) -> str:
    raise RuntimeError("model fell over")


def test_a_round_robin_of_one_agent_asks_it_once(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        solo, channel = world.letta.add_agent("solo"), new_channel()
        world.slack.add_channel(channel, "rr")
        connected = run_cli(world.env, "channels", "connect", channel, solo, "--pattern", "round_robin",
                            "--max-turns", "3")
        assert connected.returncode == 0, connected.stderr
        event, _ = world.bridge.mention("what is 2+2?", channel)
        wait_done(world, channel, event["ts"])
        assert len(received(world, solo)) == 1, received(world, solo)
        assert len(world.slack.posts(channel, event["ts"])) == 1


def test_a_round_robin_whose_other_member_failed_does_not_ask_the_first_again(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        alice, bob, channel = world.letta.add_agent("alice"), world.letta.add_agent("bob"), new_channel()
        world.slack.add_channel(channel, "rr")
        connected = run_cli(world.env, "channels", "connect", channel, alice, bob, "--pattern", "round_robin",
                            "--max-turns", "3")
        assert connected.returncode == 0, connected.stderr
        world.letta.set_reply(bob, _boom)
        event, _ = world.bridge.mention("what is 2+2?", channel)
        wait_done(world, channel, event["ts"])
        assert sum("what is 2+2?" in t for t in received(world, alice)) == 1, received(world, alice)


def test_a_dynamic_member_that_fails_leaves_the_floor_to_the_others(tmp_path: Path) -> None:
    with open_world("bridge", tmp_path) as world:
        agents = {n: world.letta.add_agent(n) for n in ("alice", "bob", "carol")}
        manager = world.letta.add_agent("mgr")
        group = world.letta.add_group(list(agents.values()), manager_type="dynamic", manager_agent_id=manager,
                                      max_turns=3)
        channel = new_channel()
        world.slack.add_channel(channel, "dyn")
        world.connect(channel, group)
        world.letta.set_reply(agents["bob"], _boom)
        # Offered all three first; then, bob's send failed, alice and carol (bob said nothing: he did not "just speak").
        world.letta.set_reply(manager, lambda text: "bob" if "Members: alice, bob, carol" in text else "carol")
        event, _ = world.bridge.mention("who knows?", channel)
        wait_done(world, channel, event["ts"])
        assert received(world, agents["carol"]), [p.args["text"] for p in world.slack.posts(channel, event["ts"])]


def test_a_dynamic_member_that_failed_is_not_asked_again_nor_one_with_nothing_new(tmp_path: Path) -> None:
    """revO: alice fails on her own, bob answers; alice was then the only one offered the floor, asked again and
    failing again, and bob, with nothing new, was sent the person's words a second time: every post twice."""
    with open_world("bridge", tmp_path) as world:
        alice, bob = world.letta.add_agent("alice"), world.letta.add_agent("bob")
        manager = world.letta.add_agent("mgr")
        group = world.letta.add_group([alice, bob], manager_type="dynamic", manager_agent_id=manager, max_turns=4)
        channel = new_channel()
        world.slack.add_channel(channel, "dyn")
        world.connect(channel, group)
        world.letta.set_reply(alice, _boom)
        world.letta.set_reply(manager, lambda text: "alice" if "Members: alice, bob" in text else "bob")
        event, _ = world.bridge.mention("who knows?", channel)
        wait_done(world, channel, event["ts"])
        posts = [str(p.args.get("text")) for p in world.slack.posts(channel, event["ts"])]
        assert sum("who knows?" in t for t in received(world, bob)) == 1, (received(world, bob), posts)
        assert posts.count("bob says hi") == 1, posts
        assert len(received(world, alice)) == 1, (received(world, alice), posts)


def test_a_round_robin_member_whose_send_failed_is_not_asked_again_without_the_question(tmp_path: Path) -> None:
    """revAE: bob's first send of the turn failed; in the next round he was asked with only the replies since (a
    later send's form), never the person's question, and his answer was posted as if to it."""
    with open_world("bridge", tmp_path) as world:
        agents = {name: world.letta.add_agent(name) for name in ("alice", "bob", "carol")}
        channel = new_channel()
        world.slack.add_channel(channel, f"chan-{channel.lower()}")
        world.connect(channel, *agents.values(), "--pattern", "round_robin", "--max-turns", "5")
        world.letta.fail_next("POST", rf"/v1/agents/{agents['bob']}/messages(/stream)?", 500, times=1)
        root, _ = world.bridge.mention("which release do we ship first?", channel)
        wait_done(world, channel, root["ts"])
        assert all("which release do we ship first?" in text for text in received(world, agents["bob"]))
        posted = [p.args.get("username") for p in world.slack.posts(channel, root["ts"])]
        assert "bob" not in posted, posted
        assert [who for who in posted if who in agents] == ["alice", "carol", "alice"], posted
