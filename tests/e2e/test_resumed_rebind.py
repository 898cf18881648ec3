"""A turn cut short by a dead process is finished by the agents it started with, even when the channel was bound
to other agents before the next start (turns.py `_take`, store/turn_binding.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import run_cli
from tests.e2e.slash import slash_world


@pytest.mark.slow
def test_a_started_turn_resumed_after_a_rebind_is_finished_by_the_agents_it_started_with(tmp_path: Path) -> None:
    """Killed while bob was being asked (alice had answered), the channel rebound to xena from the terminal:
    before, the restarted bridge asked xena in the old thread and never looked for bob's answer."""
    with slash_world(tmp_path) as sw:
        alice, bob, xena = sw.letta.add_agent("alice"), sw.letta.add_agent("bob"), sw.letta.add_agent("xena")
        sw.letta.set_delay(bob, 3.0)
        channel = "C0CRASHRB"
        sw.slack.add_channel(channel, "crashrb")
        sw.ask(f"connect {alice} {bob}", channel)
        mention, _ = sw.bridge.mention("question", channel)
        sw.letta.wait_for(lambda: [i.agent_name for i in sw.letta.inputs] == ["alice", "bob"], 15)
        sw.bridge.kill()
        connected = run_cli(sw.env, "channels", "connect", channel, xena, "--team", "T0123ABCD")
        assert connected.returncode == 0, connected.stderr
        sw.bridge.restart(tmp_path / "again.log")
        sw.slack.wait_for(lambda: "white_check_mark" in sw.slack.reactions(channel, mention["ts"]), 30)
        posted = [p.args.get("username") for p in sw.slack.posts(channel, mention["ts"])]
        assert posted == ["alice", "bob"], posted
        assert [i.agent_name for i in sw.letta.inputs] == ["alice", "bob"], "nobody asked twice, xena not at all"
        later, _ = sw.bridge.mention("and now?", channel)  # the channel's next turn goes to its new binding
        sw.slack.wait_for(lambda: "white_check_mark" in sw.slack.reactions(channel, later["ts"]), 30)
        assert [p.args.get("username") for p in sw.slack.posts(channel, later["ts"])] == ["xena"]
