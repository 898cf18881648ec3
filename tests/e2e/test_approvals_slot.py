"""A turn's MAX_CONCURRENT_TURNS slot while its cards wait (turn_slot.py): lent out only while every send of the
turn in flight waits on a card, and taken back at once when a decision lets the turn go on. Before, it was given
back at the first card (a broadcast's other agent still answering: two turns in Letta with a limit of one) and
waited for again after the decision: on the App Server on Postgres, the turn it lent its slot to waited for the
agent lock's connection this turn held through its card, and both froze until one's deadline; and a card shown
"Approved" while its turn waited for a slot was denied on Letta by a stop meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.approval_rig import ASKER, open_rig
from tests.e2e.harness import run_cli
from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_a_card_decided_while_another_channel_waits_for_a_lock_connection_goes_on(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> None:
    app = FakeAppServer(scale=0.001)
    app.start()
    try:
        alice, bob = app.add_agent("alice"), app.add_agent("bob")
        app.set_tools(alice, [("Write", False)])  # not read-only: asks in standard mode
        db = {} if backend == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_server").create_database()}
        with open_rig(tmp_path, app, app.url, alice, LETTA_TOOLS="true", MAX_CONCURRENT_TURNS="1",
                      **db) as rig:
            other = rig.another_channel(bob)
            root = rig.mention("please write the file")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 15)
            elsewhere = rig.bridge.mention("hello from general", other, user=ASKER)[0]
            [card] = rig.cards(root["ts"])
            rig.press(card, "letta_approve_tool", ASKER)
            # both turns should end: alice's reply after the decision, bob's answer in #general
            rig.slack.wait_for(lambda: "alice says hi" in rig.replies(root["ts"]), 20)
            rig.slack.wait_for(lambda: bool([p for p in rig.slack.posts(other, elsewhere["ts"])
                                             if "bob" in str(p.args.get("text"))]), 20)
    finally:
        app.stop()


def test_the_slot_is_kept_while_another_agent_of_the_turn_still_works(tmp_path: Path) -> None:
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        finn, jake, bob = letta.add_agent("finn"), letta.add_agent("jake"), letta.add_agent("bob")
        letta.set_delay(jake, 4.0)  # jake's model call takes 4 s
        with open_rig(tmp_path, letta, letta.base_url, finn, MAX_CONCURRENT_TURNS="1") as rig:
            connected = run_cli(rig.bridge.env, "channels", "connect", rig.channel, finn, jake, "--broadcast")
            assert connected.returncode == 0, connected.stderr
            other = rig.another_channel(bob)
            letta.ask_approval(finn, ("shout", '{"message": "finn"}'))
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
            rig.bridge.mention("hello from general", other, user=ASKER)
            rig.slack.wait_for(lambda: any(i.agent_id == jake and i.finished for i in letta.inputs), 15)
            rig.slack.wait_for(lambda: any(i.agent_id == bob for i in letta.inputs), 15)
            [jake_in] = [i for i in letta.inputs if i.agent_id == jake]
            [bob_in] = [i for i in letta.inputs if i.agent_id == bob]
            # with one slot, bob's turn must not reach Letta while jake (of the first turn) is still in Letta
            assert bob_in.started >= jake_in.finished, (bob_in.started, jake_in.started, jake_in.finished)
            [card] = rig.cards(root["ts"])
            rig.press(card, "letta_approve_tool", ASKER)
            rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 15)
    finally:
        letta.stop()


def test_an_approval_made_while_another_channel_holds_the_only_slot_reaches_letta_at_once(tmp_path: Path) -> None:
    """The card says "Approved by": the decision is sent then, not after the other channel's 8 s turn (a stop
    meanwhile would have denied it on Letta under a card that said approved)."""
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        finn, jake = letta.add_agent("finn"), letta.add_agent("jake")
        letta.set_delay(jake, 8.0)
        with open_rig(tmp_path, letta, letta.base_url, finn, MAX_CONCURRENT_TURNS="1") as rig:
            other = rig.another_channel(jake)
            letta.ask_approval(finn, ("shout", '{"message": "finn"}'))
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
            rig.bridge.mention("hello from general", other, user=ASKER)
            rig.slack.wait_for(lambda: any(i.agent_id == jake for i in letta.inputs), 10)
            [card] = rig.cards(root["ts"])
            rig.press(card, "letta_approve_tool", ASKER)
            rig.slack.wait_for(lambda: len(letta.approval_decisions()) == 1, 4)
            assert not any(i.agent_id == jake and i.finished for i in letta.inputs), "sent while jake still works"
            [decision] = letta.approval_decisions()
            assert [a["approve"] for a in decision["approvals"]] == [True]
            rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    finally:
        letta.stop()
