"""/letta connect and /letta status for a Letta sleeptime group name the agents that never post as the ones
"in speaking order", and never name the main agent (the group's manager_agent_id), the one agent that answers
(docs/patterns.md: "only the main agent is asked; the sleeptime agents never post"; `channels connect` says so)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import run_cli
from tests.e2e.slash import slash_world


def test_connecting_a_sleeptime_group_names_the_agent_that_answers(tmp_path: Path) -> None:
    with slash_world(tmp_path, version="0.16.8") as sw:
        background, main = sw.letta.add_agent("dreamer"), sw.letta.add_agent("mainline")
        # As captured (reference/letta/0.11.7/groups-get-sleeptime.json): agent_ids are the sleeptime agents,
        # manager_agent_id the main agent.
        group = sw.letta.add_group([background], manager_type="sleeptime", manager_agent_id=main,
                                   description="Night shift")
        cli = run_cli(sw.env, "channels", "connect", "C0SLEEPCLI", group)
        assert cli.returncode == 0, cli.stderr
        assert "main agent: mainline" in cli.stdout and "sleeptime agents (they never post)" in cli.stdout

        said = sw.ask(f"connect {group}", "C0SLEEP01")
        assert "Connected this channel" in said, said
        assert "Agents, in speaking order: dreamer" not in said, said  # dreamer never speaks
        assert "mainline" in said, said  # the one agent that answers mentions here

        status = sw.ask("status", "C0SLEEP01")
        assert "mainline" in status, status


def test_connecting_a_broadcast_says_all_at_once_not_in_turn(tmp_path: Path) -> None:
    """`channels connect … --pattern broadcast` prints "agents, all at once:"; the Slack answer said the agents
    speak "in speaking order" and that "the bridge asks each agent in turn" (docs/patterns.md: every agent gets
    the message at once, replies posted as they arrive, the fastest first)."""
    with slash_world(tmp_path, version="0.16.8") as sw:
        a, b = sw.letta.add_agent("alice"), sw.letta.add_agent("bob")
        said = sw.ask(f"connect {a} {b} pattern=broadcast", "C0BROAD01")
        assert "Connected this channel" in said, said
        assert "in turn" not in said and "speaking order" not in said, said


def test_connecting_a_supervisor_group_names_its_supervisor(tmp_path: Path) -> None:
    """The supervisor answers last, under its own name (docs/patterns.md); `channels connect` prints
    "manager: boss"; the Slack answer and /letta status named only the workers."""
    with slash_world(tmp_path, version="0.11.7") as sw:
        a, b, boss = sw.letta.add_agent("alice"), sw.letta.add_agent("bob"), sw.letta.add_agent("boss")
        group = sw.letta.add_group([a, b], manager_type="supervisor", manager_agent_id=boss, description="Sup")
        said = sw.ask(f"connect {group}", "C0SUPER01")
        assert "Connected this channel" in said, said
        assert "boss" in said, said
        assert "boss" in sw.ask("status", "C0SUPER01")


def test_channels_list_names_a_sleeptime_groups_main_agent(tmp_path: Path) -> None:
    """`channels list` showed `group-… [sleeptime] (dreamer)`: only the agent that never posts."""
    with slash_world(tmp_path, version="0.16.8") as sw:
        background, main = sw.letta.add_agent("dreamer"), sw.letta.add_agent("mainline")
        group = sw.letta.add_group([background], manager_type="sleeptime", manager_agent_id=main)
        assert run_cli(sw.env, "channels", "connect", "C0SLEEPLST", group).returncode == 0
        listed = run_cli(sw.env, "channels", "list")
        assert listed.returncode == 0, listed.stderr
        assert "mainline" in listed.stdout, listed.stdout
