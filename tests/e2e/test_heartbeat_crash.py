"""kill -9 while a 0.11.7 agent saves to memory before it answers (a tool call with request_heartbeat=true, which
Letta stores as a heartbeat *user* message between the tool's return and the answer: reference/letta/README.md
§24). The restarted bridge reads the turn back from history: the answer must be posted, not "No agent had
anything to say this time." (reviewer revGB; tests/unit/test_heartbeat_history.py for the lookup itself)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

CHANNEL = "C0HEART01"


def _killed_while_bob_thinks(tmp_path: Path, slack: FakeSlack, letta: FakeLetta, target: str,
                             *connect: str, **env_extra: str) -> list[Any]:
    """Mention the bot, kill -9 the bridge while bob (who saves to memory first) is in his step, restart it and
    wait for the mention's end; the thread's posts."""
    env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", **env_extra)
    assert run_cli(env, "channels", "connect", CHANNEL, target, *connect).returncode == 0
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        event, _ = bridge.mention("please remember I like tea", CHANNEL)
        letta.wait_for(lambda: len(letta.inputs) == 1, 10)
        bridge.kill()
        bridge.restart()
        slack.wait_for(lambda: {"white_check_mark", "warning"} & slack.reactions(CHANNEL, event["ts"]), 30)
        time.sleep(0.3)
        return slack.posts(CHANNEL, event["ts"])
    finally:
        bridge.stop()


def _bob_saves_memory(letta: FakeLetta) -> str:
    bob = letta.add_agent("bob")
    letta.set_saves_memory(bob)
    letta.set_delay(bob, 3.0)
    return bob


@pytest.mark.slow  # kill -9 mid-turn: .ci/run's slow stage
def test_an_answer_after_a_memory_save_is_posted_after_a_crash(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        posts = _killed_while_bob_thinks(tmp_path, slack, letta, _bob_saves_memory(letta))
        texts = [p.args["text"] for p in posts]
        assert [p.args.get("username") for p in posts if p.args.get("username")] == ["bob"], texts
        assert "bob says hi" in texts and not any("anything to say" in t for t in texts), texts
        assert len(letta.inputs) == 1, "bob was asked twice"


@pytest.mark.slow
def test_a_group_members_answer_after_a_memory_save_is_posted_after_a_crash(tmp_path: Path) -> None:
    """A 0.11.7 group run by the server: bob's answer after his heartbeat was dropped silently, after waiting the
    whole LETTA_RECOVERY_WAIT_SECONDS (group_settled never counted him answered)."""
    with FakeSlack() as slack, FakeLetta(version="0.11.7") as letta:
        group = letta.add_group([_bob_saves_memory(letta), letta.add_agent("carol")])
        posts = _killed_while_bob_thinks(tmp_path, slack, letta, group, "--runner", "server",
                                         LETTA_RECOVERY_WAIT_SECONDS="8")
        said = [(p.args.get("username"), p.args["text"]) for p in posts if p.args.get("username")]
        assert said == [("bob", "bob says hi"), ("carol", "carol says hi")], [p.args["text"] for p in posts]
        assert len(letta.inputs) == 2, "a member was asked twice"
