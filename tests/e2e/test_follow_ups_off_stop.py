"""In a channel where thread follow-ups are off (`slack_thread_follow_ups_except`), a plain thread reply is
the people's, not the bot's: a colleague's bare "cancel" there must not stop the agents' work, as it does not
where follow-ups are off everywhere (SLACK_THREAD_FOLLOW_UPS=false)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import World, open_world
from tests.e2e.harness import run_cli
from tests.e2e.test_threads import agent_inputs, reply_in_thread

CHANNEL = "C0OFFTEST"


def _cancel_while_alice_works(world: World, disconnect: bool) -> None:
    """alice works on a mention; a colleague replies a bare "cancel" in its thread ("keep the 3pm sync or
    cancel?"): the turn ends as answered, alice's reply posted, nothing stopped."""
    alice = world.letta.add_agent("alice")
    world.slack.add_channel(CHANNEL, "offchan")
    world.connect(CHANNEL, world.letta.add_group([alice]))
    world.letta.set_delay(alice, 4.0)
    root, _ = world.bridge.mention("draft the release notes", CHANNEL)
    world.letta.wait_for(lambda: any(t.endswith("draft the release notes") for t in agent_inputs(world, alice)), 10)
    if disconnect:
        assert run_cli(world.env, "channels", "disconnect", CHANNEL).returncode == 0
    reply_in_thread(world, CHANNEL, root["ts"], "cancel", user="U0123ABCD")
    ended = {"white_check_mark", "warning", "black_square_for_stop"}
    world.slack.wait_for(lambda: bool(ended & world.slack.reactions(CHANNEL, root["ts"])), 15)
    said = [(p.args.get("username"), p.args.get("text")) for p in world.slack.posts(CHANNEL, root["ts"])]
    assert world.slack.reactions(CHANNEL, root["ts"]) == {"white_check_mark"}, said
    assert [who for who, _ in said] == ["alice"], said


@pytest.mark.parametrize("settings", [{"SLACK_THREAD_FOLLOW_UPS": "false"},
                                      {"SLACK_THREAD_FOLLOW_UPS_EXCEPT": CHANNEL}], ids=["off-everywhere", "off-here"])
def test_a_bare_cancel_in_a_thread_where_follow_ups_are_off_does_not_stop_the_agents(
    tmp_path: Path, settings: dict[str, str]
) -> None:
    with open_world("bridge", tmp_path, **settings) as world:
        _cancel_while_alice_works(world, disconnect=False)


def test_a_bare_cancel_in_a_disconnected_channels_thread_is_left_alone(tmp_path: Path) -> None:
    """docs/mentions.md: 'once the channel is disconnected, such replies are left alone'; a turn already running
    'finishes with its agents'."""
    with open_world("bridge", tmp_path) as world:
        _cancel_while_alice_works(world, disconnect=True)
