"""A bridge bound to one agent whose tool asks for approval, and a person's hands on its cards: pressing Approve or
Deny as Slack posts `block_actions`, submitting the Deny modal, reading the card's updates. Shared by the approval
tests on the fake Letta 0.16.8 and on the fake App Server."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from tests.e2e.conftest import new_channel
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body, next_ts
from tests.fakes.slack import FakeSlack
from tests.reference import SLACK, load

ASKER, STRANGER = "U0123ABCD", "U0STRANGE"
FORM = "application/x-www-form-urlencoded"
L = TypeVar("L")  # the Letta side: a fake, or a real server's handle


@dataclass
class Rig(Generic[L]):
    slack: FakeSlack
    letta: L
    bridge: BridgeProcess
    db: Path
    channel: str
    agent: str

    def mention(self, text: str, user: str = ASKER) -> dict[str, Any]:
        event, response = self.bridge.mention(text, self.channel, user=user)
        assert response.status_code == 200
        return event

    def another_channel(self, agent: str) -> str:
        """A second channel, #general, bound to `agent`: its turns compete with the rig's for the turn slots."""
        other = new_channel()
        self.slack.add_channel(other, "general")
        assert run_cli(self.bridge.env, "channels", "connect", other, agent).returncode == 0
        return other

    def status(self, ts: str) -> str:
        with sqlite3.connect(self.db) as db:
            row = db.execute("SELECT status FROM turns WHERE message_ts=?", (ts,)).fetchone()
        return str(row[0]) if row else ""

    def cards(self, thread_ts: str) -> list[Any]:
        return [p for p in self.slack.posts(self.channel, thread_ts) if actions(p)]

    def replies(self, thread_ts: str) -> list[str]:
        return [str(p.args.get("text")) for p in self.slack.posts(self.channel, thread_ts) if not actions(p)]

    def press_body(self, card: Any, action: str, user: str) -> bytes:
        button = next(e for e in actions(card) if e["action_id"] == action)
        payload = copy.deepcopy(load(SLACK / "interactivity" / "block_actions_feedback_buttons.json"))
        payload.pop("_source", None)
        payload["response_url"] = self.slack.response_url()
        payload["trigger_id"] = self.slack.trigger_id()  # lives 3 s, as Slack's: a modal opened later is refused
        payload["actions"] = [{**button, "block_id": "letta_approval", "action_ts": next_ts()}]
        payload["user"].update(id=user)
        payload["channel"]["id"] = payload["container"]["channel_id"] = self.channel
        payload["container"]["message_ts"] = payload["message"]["ts"] = card.response["ts"]
        thread = str(card.args.get("thread_ts") or card.response["ts"])  # the card's thread, which Slack names
        payload["container"]["thread_ts"] = payload["message"]["thread_ts"] = thread
        return action_body(payload)

    def press(self, card: Any, action: str, user: str) -> None:
        assert self.post(self.press_body(card, action, user)).status_code == 200

    def post(self, body: bytes) -> httpx.Response:
        return self.bridge.post(body, content_type=FORM)

    def submit_reason(self, view: dict[str, Any], reason: str, user: str) -> Any:
        payload = copy.deepcopy(load(SLACK / "interactivity" / "view_submission.json"))
        payload["user"]["id"] = user
        payload["view"].update(callback_id=view["callback_id"], private_metadata=view["private_metadata"])
        payload["view"]["state"]["values"] = {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}
        return self.post(action_body(payload))

    def deny(self, card: Any, reason: str, user: str = ASKER) -> None:
        """Deny, and give the reason in the modal that opens."""
        opened = len(self.slack.calls_to("views.open"))
        self.press(card, "letta_deny_tool", user)
        self.slack.wait_for(lambda: len(self.slack.calls_to("views.open")) > opened)
        view = self.slack.calls_to("views.open")[-1].args["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert self.submit_reason(view, reason, user).status_code == 200

    def updates(self, card: Any) -> list[str]:
        """The card's texts after each update (its context lines)."""
        out = []
        for call in self.slack.calls_to("chat.update"):
            if call.args.get("ts") == card.response["ts"]:
                blocks = call.args.get("blocks") or []
                blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
                out.append(" ".join(e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]))
        return out

    def told(self, user: str, words: str) -> bool:
        """Whether `user` was told `words` in an ephemeral message (only they see it)."""
        return any(words in e.get("text", "") and e.get("user") == user for e in self.slack.ephemerals)


def actions(post: Any) -> list[dict[str, Any]]:
    blocks = post.args.get("blocks") or []
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"] if "approve" in e["action_id"]
            or "deny" in e["action_id"]]


@contextmanager
def open_rig(tmp_path: Path, letta: L, url: str, agent: str, **settings: str) -> Iterator[Rig[L]]:
    """The fake Slack, and a bridge bound to `agent` on the (started) `letta` at `url`; stopped and checked at the
    end."""
    slack = FakeSlack()
    slack.start()
    slack.agent_app = True  # sessions: `suspended` while a card waits
    slack.add_user(ASKER, "maria", display_name="maria")
    slack.add_user(STRANGER, "sam", display_name="sam")
    channel = new_channel()
    slack.add_channel(channel, "tools")
    db = tmp_path / "bridge.db"
    env = base_env(slack.api_url, url, db, **settings)
    done = run_cli(env, "channels", "connect", channel, agent)
    assert done.returncode == 0, done.stderr + done.stdout
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        yield Rig(slack, letta, bridge, db, channel, agent)
        assert "Traceback" not in bridge.logs(), bridge.logs()
    finally:
        bridge.stop()
        slack.stop()


@contextmanager
def app_server_rig(tmp_path: Path, **settings: str) -> Iterator[Rig[FakeAppServer]]:
    """`open_rig` on a fake App Server whose agent alice asks before its Write tool (standard mode), tools on."""
    app = FakeAppServer(scale=0.001)
    app.start()
    try:
        alice = app.add_agent("alice")
        app.set_tools(alice, [("Write", False)])
        with open_rig(tmp_path, app, app.url, alice, LETTA_TOOLS="true", **settings) as rig:
            yield rig
    finally:
        app.stop()


@contextmanager
def rest_rig(tmp_path: Path, **settings: str) -> Iterator[Rig[FakeLetta]]:
    """`open_rig` on a fake Letta 0.16.8 whose agent is finn."""
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        with open_rig(tmp_path, letta, letta.base_url, letta.add_agent("finn"), **settings) as rig:
            yield rig
    finally:
        letta.stop()
