"""A request of two tool calls (two cards): one card decided, the other still waiting. Another channel refused
409 PENDING_APPROVAL must be pointed at the card still to decide, not told the decision 'failed to reach Letta'
(found by review revDM)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.approval_rig import ASKER, Rig, rest_rig
from tests.e2e.conftest import new_channel
from tests.e2e.harness import run_cli
from tests.fakes.letta import FakeLetta

SHOUT = ("shout", '{"message": "finn says hi"}')


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig[FakeLetta]]:
    with rest_rig(tmp_path, LETTA_CONVERSATIONS="false", SLACK_APPROVE_BY="channel") as rig:
        yield rig


def test_one_card_of_two_decided_is_not_said_to_have_failed_to_reach_letta(rig: Rig[FakeLetta]) -> None:
    other = new_channel()
    rig.slack.add_channel(other, "general")
    done = run_cli(rig.bridge.env, "channels", "connect", other, rig.agent)
    assert done.returncode == 0, done.stderr + done.stdout
    rig.letta.ask_approval(rig.agent, SHOUT, ("shout", '{"message": "again"}'))  # two calls in one request
    root = rig.mention("please use tool shout twice")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 2, 10)
    first, _second = rig.cards(root["ts"])
    rig.press(first, "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: any("Approved by" in u for u in rig.updates(first)), 10)
    assert rig.letta.approval_decisions() == []  # nothing sent: the second card still waits
    elsewhere = rig.bridge.mention("hello from general", other, user=ASKER)[0]
    rig.slack.wait_for(lambda: len(rig.slack.posts(other, elsewhere["ts"])) > 0, 10)
    [told] = [str(p.args.get("text")) for p in rig.slack.posts(other, elsewhere["ts"])]
    assert "sending it failed" not in told, told
    assert told.endswith("Decide on its card, in a thread of #tools, then ask again."), told
