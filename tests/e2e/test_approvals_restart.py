"""A restart with an approval card waiting (kill -9 of the bridge, then started again as a user does).

On Letta 0.16.8 the request waits on the server: the resumed turn posts no second card, the same card decides it,
and exactly one approval message reaches Letta. On the App Server the closed socket ended the server's turn: the
card says plainly that it can no longer be used, and a press on it changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bridge.letta.appserver_runner import CUT_OFF
from tests.e2e.approval_rig import ASKER, app_server_rig, open_rig
from tests.e2e.test_approvals_app_server import answers
from tests.fakes.letta import FakeLetta

pytestmark = pytest.mark.slow
SHOUT = ("shout", '{"message": "after the restart"}')


def test_on_0_16_8_the_card_survives_a_kill_and_decides_once(tmp_path: Path) -> None:
    with FakeLetta(version="0.16.8") as letta:
        finn = letta.add_agent("finn")
        letta.ask_approval(finn, SHOUT)
        with open_rig(tmp_path, letta, letta.base_url, finn) as rig:
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
            rig.bridge.kill()
            rig.bridge.restart()
            rig.slack.wait_for(lambda: "approval card" in rig.bridge.logs() or rig.status(root["ts"]) == "running")
            [card] = rig.cards(root["ts"])
            rig.press(card, "letta_approve_tool", ASKER)
            rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 15)
            assert len(rig.cards(root["ts"])) == 1, "a second card after the restart"
            assert [[a["approve"] for a in d["approvals"]] for d in letta.approval_decisions()] == [[True]]
            sends = [i for i in letta.inputs if i.text.endswith("please use tool shout")]
            assert len(sends) == 1, "the question was sent again"
            assert rig.replies(root["ts"])[-1].endswith("finn says hi")
            rig.slack.wait_for(lambda: any("Approved by <@U0123ABCD>" in u for u in rig.updates(card)))


def test_on_0_16_8_the_words_said_before_the_request_are_posted_once_after_a_kill(tmp_path: Path) -> None:
    """The agent says something in the same answer as its tool call (approval-said-first-stream.json); the bridge is
    killed while the card waits. Before, the resumed turn posted only what the agent said after the decision."""
    with FakeLetta(version="0.16.8") as letta:
        finn = letta.add_agent("finn")
        letta.ask_approval(finn, SHOUT, said="Let me do that.")
        with open_rig(tmp_path, letta, letta.base_url, finn) as rig:
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
            rig.bridge.kill()
            rig.bridge.restart()
            [card] = rig.cards(root["ts"])
            rig.press(card, "letta_approve_tool", ASKER)
            rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 15)
            said = " ".join(rig.replies(root["ts"]))
            assert said.count("Let me do that.") == 1, said
            assert said.index("Let me do that.") < said.index("finn says hi"), said


def test_on_the_app_server_a_restart_ends_the_card_and_says_so(tmp_path: Path) -> None:
    with app_server_rig(tmp_path) as rig:
        root = rig.mention("please write the file")
        rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
        rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"])[-1:] == ["suspended"])
        rig.bridge.kill()
        with sqlite3.connect(rig.db) as db:  # killed between posting the card and recording it
            db.execute("UPDATE approvals SET card_ts=NULL")
        rig.bridge.restart()
        [card] = rig.cards(root["ts"])
        rig.slack.wait_for(lambda: any("restarted while this waited" in u for u in rig.updates(card)), 15)
        rig.slack.wait_for(lambda: rig.status(root["ts"]) == "failed", 15)
        assert rig.replies(root["ts"]) == [CUT_OFF.format(agent="alice")]  # said plainly in the thread too
        rig.press(card, "letta_approve_tool", ASKER)  # too late: nothing is sent, the presser is told why
        rig.slack.wait_for(lambda: rig.told(ASKER, "Letta no longer waits for a decision on this tool call"))
        assert not answers(rig.letta)
        assert len(rig.cards(root["ts"])) == 1
