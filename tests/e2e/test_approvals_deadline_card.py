"""The turn's deadline passing while an approval card is being posted (the wait for a person, which does not
count against TURN_DEADLINE_SECONDS, has not begun yet). Before, the turn ended and its Letta run was cancelled,
but the request stayed pending on Letta: a cancel does not decide it, so the agent refused every later message
(409 PENDING_APPROVAL). Now it ends as a Stop does: the calls are denied on Letta, and the agent answers the next
mention."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.approval_rig import open_rig
from tests.fakes.letta import FakeLetta


def test_a_deadline_passing_while_the_card_is_posted_leaves_the_agent_free(tmp_path: Path) -> None:
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        finn = letta.add_agent("finn")
        with open_rig(tmp_path, letta, letta.base_url, finn, TURN_DEADLINE_SECONDS="2") as rig:
            letta.set_delay(finn, 1.0)
            letta.ask_approval(finn, ("shout", '{"message": "finn"}'))
            rig.slack.answer_delays["chat.postMessage"] = 2.0  # the card lands after the deadline
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: rig.status(root["ts"]) == "failed", 15)
            rig.slack.answer_delays.pop("chat.postMessage")
            rig.slack.wait_for(lambda: len(letta.approval_decisions()) == 1, 10)
            [decision] = letta.approval_decisions()
            assert [a.get("approve") for a in decision.get("approvals", [])] == [False], decision
            letta.set_delay(finn, 0.0)
            again = rig.mention("are you there?")
            rig.slack.wait_for(lambda: rig.status(again["ts"]) in ("done", "failed", "partial"), 15)
            assert rig.status(again["ts"]) == "done", rig.replies(again["ts"])
    finally:
        letta.stop()
