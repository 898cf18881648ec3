"""Tool approvals as Slack buttons (issue 19) against the fake Letta 0.16.8 (captures of section 17): a card under
the agent's name, Approve or Deny (with a reason), decided once whoever clicks, the agent going on after it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.approval_rig import ASKER, STRANGER, Rig, open_rig
from tests.e2e.conftest import new_channel
from tests.e2e.harness import run_cli
from tests.fakes.letta import FakeLetta

ENDED = {"done", "partial", "failed"}
SHOUT = ("shout", '{"message": "finn says <!channel> hi"}')


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig[FakeLetta]]:
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        with open_rig(tmp_path, letta, letta.base_url, letta.add_agent("finn"), **getattr(request, "param", {})) as rig:
            yield rig
    finally:
        letta.stop()


def test_approve_runs_the_tool_once_and_the_agent_goes_on(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    assert card.args["username"] == "finn"
    shown = json.dumps(card.args["blocks"])
    assert "`shout`" in shown and "&lt;!channel&gt;" in shown and "<!channel>" not in shown  # escaped, in code
    rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root["ts"])[-1:] == ["suspended"])
    assert rig.status(root["ts"]) == "running"
    rig.press(card, "letta_approve_tool", STRANGER)  # not the asker: refused, only to them, nothing changes
    rig.slack.wait_for(lambda: any("Only <@" in e.get("text", "") for e in rig.slack.ephemerals))
    rig.press(card, "letta_approve_tool", ASKER)
    rig.press(card, "letta_approve_tool", ASKER)  # a double click: decided once
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    decisions = rig.letta.approval_decisions()
    assert [[a["approve"] for a in d["approvals"]] for d in decisions] == [[True]]
    assert rig.replies(root["ts"])[-1].endswith("finn says hi")
    rig.slack.wait_for(lambda: any("Approved by <@U0123ABCD>" in u for u in rig.updates(card)))
    rig.slack.wait_for(lambda: any("Already decided" in e.get("text", "") for e in rig.slack.ephemerals))
    assert rig.slack.session_statuses(rig.channel, root["ts"])[-2:] == ["processing", "active"]


def test_deny_asks_a_reason_and_the_agent_is_told_it(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    rig.press(card, "letta_deny_tool", ASKER)
    rig.slack.wait_for(lambda: len(rig.slack.calls_to("views.open")) == 1)
    view = rig.slack.calls_to("views.open")[0].args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    refused = rig.submit_reason(view, "not today", STRANGER)  # not theirs to decide: told in the thread, only them
    assert refused.status_code == 200 and "errors" not in refused.text
    rig.slack.wait_for(lambda: rig.told(STRANGER, "Only <@U0123ABCD>, who asked may decide"))
    assert rig.submit_reason(view, "too loud for the office", ASKER).status_code == 200
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    [decision] = rig.letta.approval_decisions()
    assert decision["approvals"][0]["approve"] is False
    assert decision["approvals"][0]["reason"] == "too loud for the office"
    rig.slack.wait_for(lambda: any("Denied by <@U0123ABCD>" in u and "too loud" in u for u in rig.updates(card)))


@pytest.mark.parametrize("rig", [{"APPROVAL_TIMEOUT_SECONDS": "1", "SLACK_APPROVE_BY": "channel"}], indirect=True)
def test_a_card_nobody_decides_is_denied_at_the_timeout_and_says_so(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT, ("shout", '{"message": "again"}'))  # two calls in one request
    root = rig.mention("please use tool shout twice")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 2, 10)
    first, second = rig.cards(root["ts"])
    rig.press(first, "letta_approve_tool", STRANGER)  # anyone in the channel may decide here
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 15)
    [decision] = rig.letta.approval_decisions()  # one approval message, one decision per call
    assert [a["approve"] for a in decision["approvals"]] == [True, False]
    assert "Nobody approved this tool call" in decision["approvals"][1]["reason"]
    rig.slack.wait_for(lambda: any("Nobody decided in time" in u for u in rig.updates(second)))


def test_a_new_message_while_a_card_waits_waits_behind_it(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
    rig.slack.wait_for(lambda: rig.status(later["ts"]) == "received", 5)
    assert not [i for i in rig.letta.inputs if i.text.endswith("are you there?")]  # never sent into a 409
    rig.slack.wait_for(lambda: any(r.startswith("Queued") for r in rig.replies(root["ts"])))
    [notice] = [r for r in rig.replies(root["ts"]) if r.startswith("Queued")]
    assert notice.endswith("one of them waits for someone to approve or deny finn's tool call `shout` on its card.")
    rig.press(rig.cards(root["ts"])[0], "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(later["ts"]) == "done", 10)
    assert [r.status for r in rig.letta.requests if r.method == "POST" and "messages" in r.path] == [200, 200, 200]


@pytest.mark.parametrize("rig", [{"SLACK_APPROVE_BY": "channel"}], indirect=True)
def test_two_people_at_once_decide_once_and_the_loser_is_told(rig: Rig[FakeLetta]) -> None:
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    bodies = {user: rig.press_body(card, "letta_approve_tool", user) for user in (ASKER, STRANGER)}
    ready = threading.Barrier(2)
    answers: dict[str, int] = {}

    def click(user: str) -> None:
        ready.wait()
        answers[user] = rig.post(bodies[user]).status_code

    clicks = [threading.Thread(target=click, args=(user,)) for user in bodies]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join(15)
    assert answers == {ASKER: 200, STRANGER: 200}
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    rig.slack.wait_for(lambda: len(rig.slack.ephemerals) == 1)
    [told] = rig.slack.ephemerals  # only the loser, only to them, in plain words naming the winner
    winner = ASKER if told["user"] == STRANGER else STRANGER
    assert told["text"].startswith(f"Already decided: :white_check_mark: Approved by <@{winner}> <!date^")
    assert [[a["approve"] for a in d["approvals"]] for d in rig.letta.approval_decisions()] == [[True]]
    rig.slack.wait_for(lambda: any(f"Approved by <@{winner}>" in u for u in rig.updates(card)))
    assert rig.replies(root["ts"])[-1].endswith("finn says hi")


@pytest.mark.parametrize("rig", [{"LETTA_STREAM_TOKENS": "true"}], indirect=True)
def test_a_request_streamed_in_fragments_gets_one_whole_card(rig: Rig[FakeLetta]) -> None:
    """With tokens streaming, 0.16.8 sends the request in fragments (approval-stream-tokens.json): one card, with
    the whole arguments, and one decision for its one call."""
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1 or rig.status(root["ts"]) in ENDED, 10)
    assert rig.status(root["ts"]) == "running", rig.replies(root["ts"])
    [card] = rig.cards(root["ts"])
    assert "`shout`" in json.dumps(card.args["blocks"]) and "finn says &lt;!channel&gt; hi" in json.dumps(
        card.args["blocks"])
    rig.press(card, "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    [decision] = rig.letta.approval_decisions()
    assert [a["approve"] for a in decision["approvals"]] == [True]
    assert str(rig.slack.messages(rig.channel, root["ts"])[-1].get("text")).endswith("finn says hi")


def test_a_stop_while_the_card_waits_denies_the_call_so_the_agent_is_not_left_blocked(rig: Rig[FakeLetta]) -> None:
    """0.16.8 keeps a request pending until it gets a decision, whatever is cancelled (a cancel finds no run; the
    next message gets 409 PENDING_APPROVAL, seen on a real server): a Stop denies it, so the thread goes on."""
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    rig.bridge.mention("stop", rig.channel, user=ASKER, thread_ts=root["ts"])
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "stopped", 10)
    rig.slack.wait_for(lambda: len(rig.letta.approval_decisions()) == 1, 10)
    [decision] = rig.letta.approval_decisions()
    assert [(a["approve"], a["reason"]) for a in decision["approvals"]] == [(False, "the turn was stopped")]
    later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
    rig.slack.wait_for(lambda: rig.status(later["ts"]) in ENDED, 10)
    assert rig.status(later["ts"]) == "done", rig.replies(root["ts"])
    assert not any("approve or deny" in r for r in rig.replies(root["ts"]))


@pytest.mark.parametrize("rig", [{"LETTA_CONVERSATIONS": "false"}], indirect=True)
def test_another_channel_refused_while_the_card_waits_is_told_where_the_card_is(rig: Rig[FakeLetta]) -> None:
    """Threads are not conversations and the agent is shared: while finn's card waits in #tools, 0.16.8 refuses a
    message to finn from another channel (409 PENDING_APPROVAL). Before, that channel was told to decide on "its
    card in the thread", a card it had never seen. It is now told which channel the card is in."""
    other = new_channel()
    rig.slack.add_channel(other, "general")
    done = run_cli(rig.bridge.env, "channels", "connect", other, rig.agent)
    assert done.returncode == 0, done.stderr + done.stdout
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    elsewhere = rig.bridge.mention("hello from general", other, user=ASKER)[0]
    rig.slack.wait_for(lambda: len(rig.slack.posts(other, elsewhere["ts"])) > 0, 10)
    [told] = [str(p.args.get("text")) for p in rig.slack.posts(other, elsewhere["ts"])]
    assert "approve or deny" in told
    assert told.endswith("Decide on its card, in a thread of #tools, then ask again."), told


def test_words_said_before_the_request_are_posted_once(rig: Rig[FakeLetta]) -> None:
    """0.16.8 sends the words of the model answer that asks for the tool first (approval-said-first-stream.json)."""
    rig.letta.ask_approval(rig.agent, SHOUT, said="Let me do that.")
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    rig.press(rig.cards(root["ts"])[0], "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    said = " ".join(rig.replies(root["ts"]))
    assert said.count("Let me do that.") == 1 and said.index("Let me do that.") < said.index("finn says hi"), said


def test_a_deny_reason_refused_is_told_in_the_cards_thread_as_the_buttons_say_it(rig: Rig[FakeLetta]) -> None:
    """The Deny modal closes on submit (its acknowledgement cannot wait for Slack to say who may decide); a refusal
    follows as the buttons' own: an ephemeral in the card's thread, only to the presser, in the same words."""
    rig.letta.ask_approval(rig.agent, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    rig.press(card, "letta_deny_tool", ASKER)
    rig.slack.wait_for(lambda: len(rig.slack.calls_to("views.open")) == 1)
    view = rig.slack.calls_to("views.open")[0].args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert "errors" not in rig.submit_reason(view, "not today", STRANGER).text
    rig.slack.wait_for(lambda: rig.told(STRANGER, "Only <@U0123ABCD>, who asked may decide on this tool call."))
    # While the asker's modal is open, the card is approved on its button (the asker's other client, say).
    rig.press(card, "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: any("Approved by" in u for u in rig.updates(card)), 10)
    assert "errors" not in rig.submit_reason(view, "too loud", ASKER).text
    rig.slack.wait_for(lambda: rig.told(ASKER, "Already decided: :white_check_mark: Approved by <@U0123ABCD>"))
    assert {(e["channel"], e["thread_ts"]) for e in rig.slack.ephemerals} == {(rig.channel, root["ts"])}
    assert [[a["approve"] for a in d["approvals"]] for d in rig.letta.approval_decisions()] == [[True]]
