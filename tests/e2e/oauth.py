"""Drive a bridge in OAuth mode as Slack and the installers' browsers do: the install page, Slack's authorize page
(the fake approves at once), the redirect back with a code and the state cookie; then signed events, commands and
modal submissions from each installed workspace."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from cryptography.fernet import Fernet

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body, command_body, event_body, mention_event, slack_json
from tests.fakes.slack import CLIENT_ID, CLIENT_SECRET, FakeSlack, Grant
from tests.reference import SLACK, load

FORM = "application/x-www-form-urlencoded"
COOKIE = "slack-app-oauth-state"
ADMIN = "U0ADMIN01"


def oauth_env(slack: FakeSlack, letta: FakeLetta, db: Path, port: int, **extra: str) -> dict[str, str]:
    env = base_env(slack.api_url, letta.base_url, db, **extra)
    del env["SLACK_BOT_TOKEN"]
    env.update(
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_CLIENT_SECRET=CLIENT_SECRET,
        BRIDGE_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        SLACK_OAUTH_AUTHORIZE_URL=slack.base_url + "oauth/v2/authorize",
        SLACK_REDIRECT_URI=f"http://127.0.0.1:{port}/slack/oauth_redirect",
    )
    env.update(extra)
    return env


@dataclass
class Installed:
    team_id: str
    enterprise_id: str | None = None
    org_wide: bool = False


@dataclass
class Many:
    slack: FakeSlack
    letta: FakeLetta
    bridge: BridgeProcess
    env: dict[str, str]
    db: Path
    teams: dict[str, Installed] = field(default_factory=dict)

    def install_page(self) -> tuple[str, str]:
        """GET /slack/install: (the authorize URL the page links to, the state cookie it set)."""
        page = httpx.get(f"{self.bridge.url}/slack/install", timeout=10)
        assert page.status_code == 200, page.text
        link = re.search(r'href="([^"]+oauth/v2/authorize[^"]+)"', page.text)
        assert link is not None, page.text
        cookie = page.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        return link.group(1).replace("&amp;", "&"), cookie

    def redirect(self, query: str, cookie: str) -> httpx.Response:
        return httpx.get(
            f"{self.bridge.url}/slack/oauth_redirect?{query}", headers={"cookie": f"{COOKIE}={cookie}"}, timeout=10
        )

    def install(self, grant: Grant) -> httpx.Response:
        """The whole install through the redirect flow, as the installer's browser goes."""
        authorize, cookie = self.install_page()
        self.slack.install_next(grant)
        approved = httpx.get(authorize, follow_redirects=False, timeout=10)
        assert approved.status_code == 302, approved.text
        location = approved.headers["location"]
        assert location.startswith(f"{self.bridge.url}/slack/oauth_redirect?")
        done = self.redirect(location.split("?", 1)[1], cookie)
        if done.status_code == 200 and grant.team_id:
            self.teams[grant.team_id] = Installed(grant.team_id, grant.enterprise_id, grant.org_wide)
        return done

    def envelope(self, body: bytes, team: str) -> bytes:
        """An event body as Slack sends it for `team` (with its org, for Enterprise Grid)."""
        installed = self.teams.get(team, Installed(team))
        if installed.enterprise_id is None:
            return body
        data = json.loads(body)
        data["enterprise_id"] = data["context_enterprise_id"] = installed.enterprise_id
        data["authorizations"][0].update(
            enterprise_id=installed.enterprise_id,
            team_id=None if installed.org_wide else team,
            is_enterprise_install=installed.org_wide,
        )
        return slack_json(data)

    def mention(self, text: str, channel: str, team: str) -> tuple[dict[str, Any], httpx.Response]:
        event = mention_event(text, channel=channel, team=team)
        body = self.envelope(event_body(event, team_id=team), team)
        return event, self.bridge.post(body)

    def event(self, name: str, team: str, at: float | None = None) -> httpx.Response:
        """app_uninstalled / tokens_revoked, shaped like reference/slack/events/<name>.json, that happened `at`
        (now, unless given: Slack's retry of a late delivery keeps the time it happened)."""
        data = copy.deepcopy(load(SLACK / "events" / f"{name}.json"))
        data["team_id"] = team
        data["event_id"] = f"Ev{name[:6]}{team}"
        data["event_time"] = int(time.time() if at is None else at)
        return self.bridge.post(self.envelope(slack_json(data), team))

    def command(self, text: str, channel: str, team: str, user: str = ADMIN) -> tuple[httpx.Response, str]:
        url = self.slack.response_url()
        body = command_body(
            text,
            command=self.env.get("SLACK_COMMAND", "/letta"),  # the one the bridge was configured with
            channel_id=channel,
            user_id=user,
            team_id=team,
            response_url=url,
            trigger_id=self.slack.trigger_id(),  # lives 3 s, as Slack's: a form opened later is refused
        )
        installed = self.teams.get(team, Installed(team))
        if installed.enterprise_id is not None:  # Enterprise Grid adds the org (docs: slash command payloads)
            fields = parse_qsl(body.decode(), keep_blank_values=True)
            fields = [(k, v) for k, v in fields if k != "is_enterprise_install"]
            fields += [("enterprise_id", installed.enterprise_id), ("enterprise_name", "Acme Org")]
            fields += [("is_enterprise_install", "true" if installed.org_wide else "false")]
            body = urlencode(fields).encode()
        return self.bridge.post(body, content_type=FORM), url

    def answer(self, url: str, timeout: float = 10.0) -> str:
        self.slack.wait_for(lambda: any(p["_url"] == url for p in self.slack.response_posts), timeout)
        return str(next(p for p in self.slack.response_posts if p["_url"] == url)["text"])

    def submit_setup(self, team: str, url: str, key: str = "", user: str = ADMIN) -> httpx.Response:
        payload = copy.deepcopy(load(SLACK / "interactivity" / "view_submission.json"))
        payload["team"]["id"] = payload["user"]["team_id"] = team
        payload["view"]["team_id"] = payload["view"]["app_installed_team_id"] = team
        payload["user"]["id"] = user
        values = payload["view"]["state"]["values"]
        values["letta_url"]["url"]["value"] = url or None
        values["letta_key"]["key"]["value"] = key or None
        return self.bridge.post(action_body(payload), content_type=FORM)

    def cli(self, *args: str) -> Any:
        return run_cli(self.env, *args)


@contextmanager
def many_world(tmp: Path, **settings: str) -> Iterator[Many]:
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    slack.add_user(ADMIN, "ada", display_name="ada", is_admin=True)
    slack.add_user("U0MEMBER1", "mel", display_name="mel")
    letta = FakeLetta(version="0.16.8")
    letta.start()
    db = tmp / "bridge.db"
    bridge = BridgeProcess({})
    bridge.env = oauth_env(slack, letta, db, bridge.port, **settings)
    slack.redirect_uri = f"{bridge.url}/slack/oauth_redirect"
    bridge.start(tmp / "bridge.log")
    world = Many(slack, letta, bridge, bridge.env, db)
    try:
        yield world
        assert "Traceback" not in bridge.logs(), bridge.logs()
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()
