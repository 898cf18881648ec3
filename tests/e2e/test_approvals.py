"""Tool approvals as Slack buttons (issue 19) against the fake Letta 0.16.8 (captures of section 17): a card under
the agent's name, Approve or Deny (with a reason), decided once whoever clicks, the agent going on after it."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import new_channel
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body, next_ts
from tests.fakes.slack import FakeSlack
from tests.reference import SLACK, load

ASKER, STRANGER = "U0123ABCD", "U0STRANGE"
FORM = "application/x-www-form-urlencoded"
SHOUT = ("shout", '{"message": "finn says <!channel> hi"}')


@dataclass
class Rig:
    slack: FakeSlack
    letta: FakeLetta
    bridge: BridgeProcess
    db: Path
    channel: str
    finn: str

    def mention(self, text: str, user: str = ASKER) -> dict[str, Any]:
        event, response = self.bridge.mention(text, self.channel, user=user)
        assert response.status_code == 200
        return event

    def status(self, ts: str) -> str:
        with sqlite3.connect(self.db) as db:
            row = db.execute("SELECT status FROM turns WHERE message_ts=?", (ts,)).fetchone()
        return str(row[0]) if row else ""

    def cards(self, thread_ts: str) -> list[Any]:
        return [p for p in self.slack.posts(self.channel, thread_ts) if _actions(p)]

    def replies(self, thread_ts: str) -> list[str]:
        return [str(p.args.get("text")) for p in self.slack.posts(self.channel, thread_ts) if not _actions(p)]

    def press(self, card: Any, action: str, user: str) -> None:
        button = next(e for e in _actions(card) if e["action_id"] == action)
        payload = copy.deepcopy(load(SLACK / "interactivity" / "block_actions_feedback_buttons.json"))
        payload.pop("_source", None)
        payload["response_url"] = self.slack.response_url()
        payload["actions"] = [{**button, "block_id": "letta_approval", "action_ts": next_ts()}]
        payload["user"].update(id=user)
        payload["channel"]["id"] = payload["container"]["channel_id"] = self.channel
        payload["container"]["message_ts"] = card.response["ts"]
        assert self.bridge.post(action_body(payload), content_type=FORM).status_code == 200

    def submit_reason(self, view: dict[str, Any], reason: str, user: str) -> Any:
        payload = copy.deepcopy(load(SLACK / "interactivity" / "view_submission.json"))
        payload["user"]["id"] = user
        payload["view"].update(callback_id=view["callback_id"], private_metadata=view["private_metadata"])
        payload["view"]["state"]["values"] = {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}
        return self.bridge.post(action_body(payload), content_type=FORM)

    def updates(self, card: Any) -> list[str]:
        """The card's texts after each update (its context lines)."""
        out = []
        for call in self.slack.calls_to("chat.update"):
            if call.args.get("ts") == card.response["ts"]:
                blocks = call.args.get("blocks") or []
                blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
                out.append(" ".join(e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]))
        return out


def _actions(post: Any) -> list[dict[str, Any]]:
    blocks = post.args.get("blocks") or []
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"] if "approve" in e["action_id"]
            or "deny" in e["action_id"]]


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    settings = getattr(request, "param", {})
    slack = FakeSlack()
    slack.start()
    slack.agent_app = True  # sessions: `suspended` while a card waits
    slack.add_user(ASKER, "maria", display_name="maria")
    slack.add_user(STRANGER, "sam", display_name="sam")
    letta = FakeLetta(version="0.16.8")
    letta.start()
    finn = letta.add_agent("finn")
    channel = new_channel()
    slack.add_channel(channel, "tools")
    db = tmp_path / "bridge.db"
    env = base_env(slack.api_url, letta.base_url, db, **settings)
    assert run_cli(env, "channels", "connect", channel, finn).returncode == 0
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        yield Rig(slack, letta, bridge, db, channel, finn)
        assert "Traceback" not in bridge.logs(), bridge.logs()
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def test_approve_runs_the_tool_once_and_the_agent_goes_on(rig: Rig) -> None:
    rig.letta.ask_approval(rig.finn, SHOUT)
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


def test_deny_asks_a_reason_and_the_agent_is_told_it(rig: Rig) -> None:
    rig.letta.ask_approval(rig.finn, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    card = rig.cards(root["ts"])[0]
    rig.press(card, "letta_deny_tool", ASKER)
    rig.slack.wait_for(lambda: len(rig.slack.calls_to("views.open")) == 1)
    view = rig.slack.calls_to("views.open")[0].args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    refused = rig.submit_reason(view, "not today", STRANGER)  # not theirs to decide: the modal says so
    assert refused.status_code == 200 and "errors" in refused.text
    assert rig.submit_reason(view, "too loud for the office", ASKER).status_code == 200
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 10)
    [decision] = rig.letta.approval_decisions()
    assert decision["approvals"][0]["approve"] is False
    assert decision["approvals"][0]["reason"] == "too loud for the office"
    rig.slack.wait_for(lambda: any("Denied by <@U0123ABCD>" in u and "too loud" in u for u in rig.updates(card)))


@pytest.mark.parametrize("rig", [{"APPROVAL_TIMEOUT_SECONDS": "1", "SLACK_APPROVE_BY": "channel"}], indirect=True)
def test_a_card_nobody_decides_is_denied_at_the_timeout_and_says_so(rig: Rig) -> None:
    rig.letta.ask_approval(rig.finn, SHOUT, ("shout", '{"message": "again"}'))  # two calls in one request
    root = rig.mention("please use tool shout twice")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 2, 10)
    first, second = rig.cards(root["ts"])
    rig.press(first, "letta_approve_tool", STRANGER)  # anyone in the channel may decide here
    rig.slack.wait_for(lambda: rig.status(root["ts"]) == "done", 15)
    [decision] = rig.letta.approval_decisions()  # one approval message, one decision per call
    assert [a["approve"] for a in decision["approvals"]] == [True, False]
    assert "Nobody approved this tool call" in decision["approvals"][1]["reason"]
    rig.slack.wait_for(lambda: any("Nobody decided in time" in u for u in rig.updates(second)))


def test_a_new_message_while_a_card_waits_waits_behind_it(rig: Rig) -> None:
    rig.letta.ask_approval(rig.finn, SHOUT)
    root = rig.mention("please use tool shout")
    rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
    later = rig.bridge.mention("are you there?", rig.channel, user=ASKER, thread_ts=root["ts"])[0]
    rig.slack.wait_for(lambda: rig.status(later["ts"]) == "received", 5)
    assert not [i for i in rig.letta.inputs if i.text.endswith("are you there?")]  # never sent into a 409
    rig.press(rig.cards(root["ts"])[0], "letta_approve_tool", ASKER)
    rig.slack.wait_for(lambda: rig.status(later["ts"]) == "done", 10)
    assert [r.status for r in rig.letta.requests if r.method == "POST" and "messages" in r.path] == [200, 200, 200]
