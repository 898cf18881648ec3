"""The decision's send refused before it reached Letta (a 503 from a proxy in front)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.approval_rig import ASKER, Rig, rest_rig
from tests.fakes.letta import FakeLetta
from tests.unit.test_gateway_errors import ENVOY_RESET, PLAIN

ENDED = {"done", "partial", "failed"}
SHOUT = ("shout", '{"message": "finn says hi"}')
SEND = r"/v1/agents/[^/]+/messages(/stream)?"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig[FakeLetta]]:
    with rest_rig(tmp_path) as rig:
        yield rig


def test_a_decision_refused_on_the_way_is_sent_again_once(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    rig.letta.fail_next("POST", SEND, 503, times=1)
    rig.press(card, "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) in ENDED, 30)
    assert rig.status(root["ts"]) == "done", rig.replies(root["ts"])
    assert len(rig.letta.approval_decisions()) == 1  # history showed it never arrived: sent again, once
    later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
    rig.slack.wait_for(lambda: rig.status(later["ts"]) in ENDED, 30)
    assert rig.status(later["ts"]) == "done", rig.replies(root["ts"])


def test_a_decision_refused_twice_is_not_pointed_at_its_decided_card(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    rig.letta.fail_next("POST", SEND, 503, times=2)
    rig.press(card, "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) in ENDED, 30)
    assert rig.letta.approval_decisions() == []  # refused both times: Letta never got it
    later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
    rig.slack.wait_for(lambda: rig.status(later["ts"]) in ENDED, 30)
    said = next(r for r in rig.replies(root["ts"]) if "waiting for someone" in r)
    assert "already decided on its card above" in said and "Decide on its card" not in said, said


def test_a_decision_that_reached_letta_behind_a_failed_answer_is_not_sent_again(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    rig.letta.gateway_next("POST", SEND, 503, ENVOY_RESET, PLAIN)  # Letta ran it; the gateway answered 503
    rig.press(card, "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) in ENDED, 30)
    assert len(rig.letta.approval_decisions()) == 1, rig.replies(root["ts"])  # never a second turn
    later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
    rig.slack.wait_for(lambda: rig.status(later["ts"]) in ENDED, 30)
    assert rig.status(later["ts"]) == "done", rig.replies(root["ts"])
