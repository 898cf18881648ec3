"""Each group pattern end to end on both runners ("server" on a 0.11.7 fake, "bridge" on 0.16.8): who is posted,
under which name, in which order, and what each bridge-run agent received.

The fake builds its answers from the captures in reference/letta (groups-send-supervisor.json,
groups-send-dynamic*.json, groups-get-*.json); see tests/fakes/letta_shapes.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.conftest import World, new_channel
from tests.e2e.test_mentions import letta_sends_to, thread_posts, wait_done
from tests.quoting import said


@dataclass
class Managed:
    channel: str
    group_id: str
    manager: str
    agents: dict[str, str]


def managed(world: World, manager_type: str, manager_name: str, names: tuple[str, ...] = ("alice", "bob", "carol"),
            **group: Any) -> Managed:
    agents = {name: world.letta.add_agent(name) for name in names}
    manager = world.letta.add_agent(manager_name)
    group_id = world.letta.add_group(list(agents.values()), manager_type=manager_type, manager_agent_id=manager,
                                     description=f"{manager_type} crew", **group)
    channel = new_channel()
    world.slack.add_channel(channel, f"chan-{channel.lower()}")
    world.connect(channel, group_id)
    return Managed(channel, group_id, manager, agents)


def posted(world: World, crew: Managed, ts: str, count: int) -> list[tuple[str, str]]:
    thread_posts(world, crew.channel, ts, count)
    wait_done(world, crew.channel, ts)
    return [(p.args.get("username", ""), p.args["text"]) for p in world.slack.posts(crew.channel, ts)]


def received(world: World, agent_id: str) -> list[str]:
    return [i.text for i in world.letta.inputs if i.agent_id == agent_id]


def test_supervisor_posts_each_worker_under_its_name_then_the_manager(world: World) -> None:
    crew = managed(world, "supervisor", "mgr_sup")
    world.letta.set_reply(crew.agents["bob"], "bob says: 'it's \"done\"'")
    event, _ = world.bridge.mention("status please", crew.channel)
    posts = posted(world, crew, event["ts"], 4)
    workers = posts[:3]
    assert sorted(workers) == [("alice", "alice says hi"), ("bob", "bob says: 'it's \"done\"'"),
                               ("carol", "carol says hi")]
    assert posts[3] == ("mgr_sup", "mgr_sup says hi")
    assert world.letta.overlaps == []
    if world.runner == "server":
        assert [s.path for s in letta_sends_to(world, [crew.group_id, crew.manager, *crew.agents.values()])] == [
            f"/v1/groups/{crew.group_id}/messages/stream"
        ]
        return
    prefix = f"[maria in #chan-{crew.channel.lower()} on Slack] "
    for name in ("alice", "bob", "carol"):
        assert received(world, crew.agents[name]) == [prefix + "status please"]
    [to_manager] = received(world, crew.manager)
    assert to_manager.startswith(prefix + "status please\n\nYour workers answered:\n")
    assert said("alice", "alice says hi") in to_manager and said("bob", "bob says: 'it's \"done\"'") in to_manager


def test_dynamic_posts_the_speakers_not_the_managers_choices(world: World) -> None:
    crew = managed(world, "dynamic", "mgr_dyn", max_turns=2)
    world.letta.set_reply(
        crew.manager, lambda text: "bob" if '"agent": "bob"' not in text and "bob:" not in text else "carol"
    )
    event, _ = world.bridge.mention("who knows?", crew.channel)
    posts = posted(world, crew, event["ts"], 2)
    assert posts == [("bob", "bob says hi"), ("carol", "carol says hi")]
    assert received(world, crew.agents["alice"]) == []
    if world.runner == "server":
        assert len(letta_sends_to(world, [crew.group_id, crew.manager, *crew.agents.values()])) == 1
        return
    choices = received(world, crew.manager)
    assert len(choices) == 2 and "Members: alice, bob, carol." in choices[0]
    assert "Members: alice, carol (bob just spoke)." in choices[1]
    assert said("bob", "bob says hi") in choices[1]
    [to_carol] = received(world, crew.agents["carol"])
    assert said("bob", "bob says hi") in to_carol


def test_sleeptime_only_the_main_agent_answers_on_the_bridge(world: World) -> None:
    crew = managed(world, "sleeptime", "main", names=("sleeper",))
    event, _ = world.bridge.mention("remember this", crew.channel)
    posts = posted(world, crew, event["ts"], 1)
    assert posts == [("main", "main says hi")]
    sends = letta_sends_to(world, [crew.group_id, crew.manager, *crew.agents.values()])
    assert [world.letta.asked(s) for s in sends] == [crew.manager]
    assert received(world, crew.agents["sleeper"]) == []


def test_dynamic_stops_at_the_termination_token(world: World) -> None:
    crew = managed(world, "dynamic", "mgr_dyn", max_turns=3)
    world.letta.set_reply(crew.manager, "alice")
    world.letta.set_reply(crew.agents["alice"], "all settled DONE!")
    event, _ = world.bridge.mention("settle it", crew.channel)
    assert posted(world, crew, event["ts"], 1) == [("alice", "all settled DONE!")]
    assert len(received(world, crew.agents["alice"])) == 1


def test_dynamic_manager_naming_nobody_ends_the_turn_in_plain_words(world: World) -> None:
    crew = managed(world, "dynamic", "mgr_dyn")
    world.letta.set_reply(crew.manager, "hmm, let me think")
    event, _ = world.bridge.mention("anyone?", crew.channel)
    [(_who, text)] = posted(world, crew, event["ts"], 1)
    assert all(received(world, a) == [] for a in crew.agents.values())
    if world.runner == "bridge":
        assert "mgr_dyn named no member to speak next" in text
    else:  # 0.11.7 fails the send (a 500; the fake cuts its stream): the choice itself is never posted
        assert "let me think" not in text



def test_round_robin_max_turns_from_the_group_record(world: World) -> None:
    agents = {name: world.letta.add_agent(name) for name in ("alice", "bob")}
    group_id = world.letta.add_group(list(agents.values()), max_turns=3, description="rr")
    channel = new_channel()
    world.slack.add_channel(channel, f"chan-{channel.lower()}")
    world.connect(channel, group_id)
    bob = '"agent": "bob"'
    world.letta.set_reply(agents["alice"], lambda text: f"alice {text.count(bob) + text.count('bob:')}")
    event, _ = world.bridge.mention("go round", channel)
    crew = Managed(channel, group_id, "", agents)
    posts = posted(world, crew, event["ts"], 3)
    assert [who for who, _ in posts] == ["alice", "bob", "alice"]
    assert posts[2][1] == "alice 1"  # the second time round, alice has heard bob
    assert len(received(world, agents["alice"])) == 2 and len(received(world, agents["bob"])) == 1


def test_broadcast_answers_fastest_first_and_is_shown_as_the_pattern(tmp_path: Path) -> None:
    from tests.e2e.harness import BridgeProcess, base_env, run_cli
    from tests.fakes.letta import FakeLetta
    from tests.fakes.slack import FakeSlack

    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db")
        slow, fast = letta.add_agent("slow"), letta.add_agent("fast")
        letta.set_delay(slow, 1.0)
        letta.set_delay(fast, 0.1)
        done = run_cli(env, "channels", "connect", "C0CAST001", slow, fast, "--broadcast")
        assert done.returncode == 0, done.stderr
        assert "pattern: broadcast" in done.stdout and "all at once" in done.stdout
        assert "[broadcast]" in run_cli(env, "channels", "list").stdout
        assert "C0CAST001 broadcast, runner auto (bridge for a list of agents)" in run_cli(env, "check").stdout
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            event, _ = bridge.mention("everyone at once", "C0CAST001")
            slack.wait_for(lambda: len(slack.posts("C0CAST001", event["ts"])) == 2, 10)
            assert [p.args["username"] for p in slack.posts("C0CAST001", event["ts"])] == ["fast", "slow"]
            starts = sorted(i.started for i in letta.inputs)
            assert starts[1] - starts[0] < 0.5, "the agents were not asked at the same time"
            assert all("everyone at once" in i.text for i in letta.inputs)
        finally:
            bridge.stop()


def test_max_turns_from_config_and_a_repeat_speakers_reply_reaches_the_others(tmp_path: Path) -> None:
    """LETTA_MAX_TURNS applies when the group record has none (bridge runner); alice's second reply of a turn
    is in the group's transcript, so bob is shown it on the next turn."""
    from tests.e2e.conftest import open_world

    with open_world("bridge", tmp_path, LETTA_MAX_TURNS="3") as world:
        agents = {name: world.letta.add_agent(name) for name in ("alice", "bob")}
        group_id = world.letta.add_group(list(agents.values()), description="rr")
        channel = new_channel()
        world.slack.add_channel(channel, f"chan-{channel.lower()}")
        world.connect(channel, group_id)
        answers = iter(["alice first", "alice second", "alice third"])
        world.letta.set_reply(agents["alice"], lambda _text: next(answers))
        crew = Managed(channel, group_id, "", agents)
        first, _ = world.bridge.mention("go round", channel)
        assert [who for who, _ in posted(world, crew, first["ts"], 3)] == ["alice", "bob", "alice"]
        second, _ = world.bridge.mention("and again", channel)
        posted(world, crew, second["ts"], 3)
        bob_second_turn = received(world, agents["bob"])[1]
        assert said("alice", "alice second") in bob_second_turn
        assert said("alice", "alice third") in bob_second_turn
        assert bob_second_turn.count("alice first") == 0, "bob was shown a reply he had already seen"
        # revV: a round robin defined in the bridge (no group record: Cloud, 0.16.5+) took the setting too;
        # before, each member was asked once. A plain list of agents is asked once each, whatever the setting.
        for options, order in ((("--pattern", "round_robin"), ["cy", "di", "cy"]), ((), ["cy", "di"])):
            pair = {name: world.letta.add_agent(name) for name in ("cy", "di")}
            channel = new_channel()
            world.slack.add_channel(channel, f"chan-{channel.lower()}")
            world.connect(channel, *pair.values(), *options)
            root, _ = world.bridge.mention("count off", channel)
            listed = Managed(channel, "", "", pair)
            assert [who for who, _ in posted(world, listed, root["ts"], len(order))] == order, options
