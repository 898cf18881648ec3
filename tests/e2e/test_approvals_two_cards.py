"""Two agents of one turn (broadcast) each wait on a card: the turn's deadline stays off until neither waits
(approvals.TurnApprovals: the wait for a person never counts against TURN_DEADLINE_SECONDS). Before, the first
card decided turned it back on while the second still waited: the turn ended at its deadline, and the second
card's Approve, shown as decided, never reached Letta, which kept that agent waiting for good."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.approval_rig import ASKER, open_rig
from tests.e2e.harness import run_cli
from tests.fakes.letta import FakeLetta


def test_a_second_card_waiting_past_the_turns_deadline_is_still_decided_and_sent(tmp_path: Path) -> None:
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        finn, jake = letta.add_agent("finn"), letta.add_agent("jake")
        with open_rig(tmp_path, letta, letta.base_url, finn, SLACK_APPROVE_BY="channel",
                      TURN_DEADLINE_SECONDS="4") as rig:
            connected = run_cli(rig.bridge.env, "channels", "connect", rig.channel, finn, jake, "--broadcast")
            assert connected.returncode == 0, connected.stderr
            letta.ask_approval(finn, ("shout", '{"message": "finn"}'))
            letta.ask_approval(jake, ("shout", '{"message": "jake"}'))
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 2, 10)
            first, second = rig.cards(root["ts"])
            rig.press(first, "letta_approve_tool", ASKER)
            rig.slack.wait_for(lambda: len(letta.approval_decisions()) == 1, 10)
            time.sleep(6)  # the other card waits past the 4 s deadline
            assert rig.status(root["ts"]) == "running", rig.replies(root["ts"])
            rig.press(second, "letta_approve_tool", ASKER)
            rig.slack.wait_for(lambda: len(letta.approval_decisions()) == 2, 10)
            rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    finally:
        letta.stop()


def test_a_card_waiting_gives_its_turn_slot_back_to_other_channels(tmp_path: Path) -> None:
    """MAX_CONCURRENT_TURNS=1: before, one card waiting (up to APPROVAL_TIMEOUT_SECONDS) held the only slot, and
    every other channel's mentions waited silently behind it."""
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        finn, jake = letta.add_agent("finn"), letta.add_agent("jake")
        with open_rig(tmp_path, letta, letta.base_url, finn, MAX_CONCURRENT_TURNS="1") as rig:
            other = rig.another_channel(jake)
            letta.ask_approval(finn, ("shout", '{"message": "finn"}'))
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
            elsewhere = rig.bridge.mention("hello from general", other, user=ASKER)[0]
            rig.slack.wait_for(lambda: bool(rig.slack.posts(other, elsewhere["ts"])), 10)
            [card] = rig.cards(root["ts"])
            rig.press(card, "letta_approve_tool", ASKER)  # the first turn takes a slot again and goes on
            rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    finally:
        letta.stop()
