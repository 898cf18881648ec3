"""Drive the /letta command end to end: signed form-encoded slash commands and menu actions, as Slack sends them,
and the answers the bridge posts to each request's response_url on the fake Slack."""

from __future__ import annotations

import copy
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body, command_body
from tests.fakes.slack import FakeSlack
from tests.reference import SLACK, load

FORM = "application/x-www-form-urlencoded"
ADMIN, OWNER, LISTED, MEMBER, CREATOR = "U0ADMIN01", "U0OWNER01", "U0LISTED1", "U0MEMBER1", "U0CREATE1"
TEAM = "T0123ABCD"


def add_people(slack: FakeSlack) -> None:
    slack.add_user(ADMIN, "ada", display_name="ada", is_admin=True)
    slack.add_user(OWNER, "otto", display_name="otto", is_owner=True)
    slack.add_user(LISTED, "lise", display_name="lise")
    slack.add_user(MEMBER, "mel", display_name="mel")
    slack.add_user(CREATOR, "cree", display_name="cree")


@dataclass
class Answer:
    """The bridge's immediate HTTP answer (the ack) and what it later posted to the response_url."""

    ack: httpx.Response
    seconds: float
    url: str
    slack: FakeSlack

    def posts(self) -> list[dict[str, Any]]:
        return [p for p in self.slack.response_posts if p["_url"] == self.url]

    def wait(self, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        self.slack.wait_for(lambda: len(self.posts()) >= count, timeout)
        return self.posts()[count - 1]

    @property
    def text(self) -> str:
        return str(self.wait()["text"])


@dataclass
class Slash:
    slack: FakeSlack
    letta: FakeLetta | FakeAppServer
    bridge: BridgeProcess
    env: dict[str, str]
    db: Path

    def send(self, text: str, channel: str, user: str = ADMIN, team: str = TEAM, command: str = "/letta") -> Answer:
        url = self.slack.response_url()
        body = command_body(text, command=command, channel_id=channel, user_id=user, team_id=team, response_url=url)
        started = time.monotonic()
        ack = self.bridge.post(body, content_type=FORM)
        return Answer(ack, time.monotonic() - started, url, self.slack)

    def ask(self, text: str, channel: str, user: str = ADMIN) -> str:
        """A command answered through the response_url (after an empty ack); returns the answer's text."""
        answer = self.send(text, channel, user)
        assert answer.ack.status_code == 200 and answer.ack.text == "", answer.ack.text
        return answer.text

    def choose(self, channel: str, action: dict[str, Any], user: str = ADMIN, team: str = TEAM,
               state: dict[str, Any] | None = None) -> Answer:
        """A block_actions payload from the ephemeral menu, shaped like the reference fixture."""
        payload = copy.deepcopy(load(SLACK / "interactivity" / "block_actions_static_select.json"))
        url = self.slack.response_url()
        payload.update(response_url=url, actions=[action], state={"values": state or {}})
        payload["user"].update(id=user, team_id=team)
        payload["team"]["id"] = team
        payload["channel"]["id"] = payload["container"]["channel_id"] = channel
        started = time.monotonic()
        ack = self.bridge.post(action_body(payload), content_type=FORM)
        return Answer(ack, time.monotonic() - started, url, self.slack)

    def pattern(self, channel: str, team: str = TEAM) -> tuple[Any, ...] | None:
        """(manager_type, manager_id, max_turns, termination_token) as stored, or None."""
        with sqlite3.connect(self.db) as db:
            row = db.execute(
                "SELECT manager_type, manager_id, max_turns, termination_token FROM bindings "
                "WHERE team_id=? AND channel_id=?",
                (team, channel),
            ).fetchone()
        return None if row is None else tuple(row)

    def binding(self, channel: str, team: str = TEAM) -> tuple[str, str, str] | None:
        """(kind, target ids, bound_by) as stored, or None."""
        with sqlite3.connect(self.db) as db:
            row = db.execute(
                "SELECT kind, COALESCE(group_id, agents), bound_by FROM bindings WHERE team_id=? AND channel_id=?",
                (team, channel),
            ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def notices(self, channel: str) -> list[str]:
        return [str(p.args["text"]) for p in self.slack.posts(channel) if not p.args.get("thread_ts")]


@contextmanager
def slash_world(tmp: Path, version: str = "0.16.8", **settings: str) -> Iterator[Slash]:
    """The bridge with a fake Slack and a fake Letta of `version` ("app-server": the fake App Server)."""
    slack = FakeSlack()
    slack.start()
    add_people(slack)
    letta = FakeAppServer(scale=0.001) if version == "app-server" else FakeLetta(version=version)
    letta.start()
    db = tmp / "bridge.db"
    url = letta.url if isinstance(letta, FakeAppServer) else letta.base_url
    env = base_env(slack.api_url, url, db, **settings)
    world = Slash(slack, letta, BridgeProcess(env).start(tmp / "bridge.log"), env, db)
    try:
        yield world
        assert "Traceback" not in world.bridge.logs(), world.bridge.logs()
    finally:
        world.bridge.stop()
        letta.stop()
        slack.stop()


def group_choice(group_id: str) -> dict[str, Any]:
    option = {"text": {"type": "plain_text", "text": "crew", "emoji": True}, "value": group_id}
    return {"type": "static_select", "action_id": "letta_connect_group", "block_id": "letta_group_block",
            "selected_option": option, "action_ts": "1764065000.987654"}


def button(action_id: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "block_id": "letta_agents_buttons", "value": action_id,
            "text": {"type": "plain_text", "text": action_id}, "action_ts": "1764065000.987655"}


def agents_state(*agent_ids: str) -> dict[str, Any]:
    options = [{"text": {"type": "plain_text", "text": a}, "value": a} for a in agent_ids]
    return {"letta_agents_block": {"letta_pick_agents": {"type": "multi_static_select", "selected_options": options}}}


def pattern_state(*agent_ids: str, pattern: str | None = None, manager: str | None = None,
                  max_turns: str | None = None, token: str | None = None) -> dict[str, Any]:
    """The menu's state when Connect is pressed: the agents picked, and the pattern row's selects (shaped like the
    captured static_select) and the termination token's input (shaped like view_submission.json's inputs)."""
    def select(value: str | None) -> dict[str, Any]:
        chosen = {"text": {"type": "plain_text", "text": value}, "value": value} if value else None
        return {"type": "static_select", "selected_option": chosen}

    row = {"letta_pick_pattern": select(pattern), "letta_pick_manager": select(manager),
           "letta_pick_max_turns": select(max_turns)}
    ending = {"letta_termination": {"type": "plain_text_input", "value": token}}
    return {**agents_state(*agent_ids), "letta_pattern_block": row, "letta_termination_block": ending}
