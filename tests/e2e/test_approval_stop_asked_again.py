"""A Stop while a card waits denies the call on Letta ("the turn was stopped"); the agent's model may answer that
denial by calling its next tool (tests/real/llm.py does for "use tool A use tool B", and so did a real 0.16.8:
history ends approval_request, approval_response, tool_return "denied", approval_request). 0.16.8 keeps that new
request pending and refuses every later message of the thread (409 PENDING_APPROVAL), so the bridge denies it too,
up to `approving.ROUNDS` times, and says in the thread what is left pending past that."""

from __future__ import annotations

import pytest

from tests.e2e import test_approvals
from tests.e2e.approval_rig import ASKER, Rig
from tests.fakes.letta import FakeLetta

ENDED = {"done", "partial", "failed", "stopped"}
SHOUT = ("shout", '{"message": "finn says hi"}')
AGAIN = ("shout", '{"message": "second"}')


rig = test_approvals.rig  # finn on the fake 0.16.8, with the settings the test gives


def _stopped_while_a_card_waits(rig: Rig[FakeLetta]) -> dict[str, str]:
    root = rig.mention("please use tool shout use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    rig.bridge.mention("stop", rig.channel, user=ASKER, thread_ts=root["ts"])
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "stopped", 10)
    return root


def test_a_request_made_after_an_approval_gets_its_own_card(rig: Rig[FakeLetta]) -> None:
    """The fake's model asking again after a decision is read as a new request: a second card, decided in turn."""
    rig.letta.ask_approval(rig.agent, SHOUT)
    rig.letta.ask_approval_next(rig.agent, AGAIN)
    root = rig.mention("please use tool shout use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    rig.press(rig.cards(root["ts"])[0], "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 2, 10)
    rig.press(rig.cards(root["ts"])[1], "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) in ENDED, 10)
    assert rig.status(root["ts"]) == "done", rig.replies(root["ts"])


@pytest.mark.parametrize("rig", [{}, {"LETTA_CONVERSATIONS": "false"}], indirect=True)
def test_a_request_made_in_answer_to_a_stops_denial_is_denied_too_and_the_thread_answers_again(
    rig: Rig[FakeLetta],
) -> None:
    """Both requests denied once each with the stop's reason, no card for the second, the next message answered."""
    rig.letta.ask_approval(rig.agent, SHOUT)
    rig.letta.ask_approval_next(rig.agent, AGAIN)
    root = _stopped_while_a_card_waits(rig)
    rig.slack.wait_for(lambda: len(rig.letta.approval_decisions()) >= 2, 10)
    later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
    rig.slack.wait_for(lambda: rig.status(later["ts"]) in ENDED, 10)
    assert rig.status(later["ts"]) == "done", rig.replies(root["ts"])
    decisions = rig.letta.approval_decisions()
    assert [[(a["approve"], a.get("reason")) for a in d["approvals"]] for d in decisions] == [
        [(False, "the turn was stopped")]
    ] * 2, decisions
    assert len(rig.cards(root["ts"])) == 1


def test_an_agent_that_keeps_asking_after_a_stop_is_denied_five_times_more_and_the_thread_told(
    rig: Rig[FakeLetta],
) -> None:
    """Past the bound the bridge stops denying and says in the thread what is left pending and how to clear it."""
    rig.letta.ask_approval(rig.agent, SHOUT)
    for _ in range(6):
        rig.letta.ask_approval_next(rig.agent, AGAIN)
    root = _stopped_while_a_card_waits(rig)
    rig.slack.wait_for(lambda: any("stopped denying" in r for r in rig.replies(root["ts"])), 10)
    assert len(rig.letta.approval_decisions()) == 6  # the stop's own denial, then one per request asked again
    [told] = [r for r in rig.replies(root["ts"]) if "stopped denying" in r]
    assert "`shout` waits on Letta" in told and "An operator can deny" in told, told
