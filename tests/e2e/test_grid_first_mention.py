"""An org-wide (Enterprise Grid) install, seen from one workspace of the org: revAI, its first request an event (a
mention answered by DEFAULT_TARGET, no /letta command run there yet) must be answered, not ended `uninstalled`;
revBY, the org installing again to grant chat:write.customize names the agents from that workspace's next turn,
as a workspace's own reinstall does."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.harness import BridgeProcess, inbox_drained
from tests.e2e.oauth import ADMIN, Installed, Many, oauth_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack, Grant
from tests.fakes.slack_reference import DEFAULT_SCOPES

ORG, TEAM, CHANNEL = "E0ORG0001", "T0GRIDA01", "C0GRIDA01"
GRANT = Grant(None, "", enterprise_id=ORG, enterprise_name="Acme Org", org_wide=True)


@contextmanager
def grid(tmp_path: Path) -> Iterator[Many]:
    """A bridge in OAuth mode whose DEFAULT_TARGET is dora, the org not installed yet."""
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    slack.add_user(ADMIN, "ada", display_name="ada", is_admin=True)
    letta = FakeLetta(version="0.16.8")
    letta.start()
    dora = letta.add_agent("dora")
    db = tmp_path / "bridge.db"
    bridge = BridgeProcess({})
    bridge.env = oauth_env(slack, letta, db, bridge.port, DEFAULT_TARGET=dora, DEFAULT_TARGET_IN_CHANNELS="true")
    slack.redirect_uri = f"{bridge.url}/slack/oauth_redirect"
    bridge.start(tmp_path / "bridge.log")
    try:
        yield Many(slack, letta, bridge, bridge.env, db)
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()


def installed(world: Many) -> None:
    """The org installs the app (again); its workspace's channel is known to Slack."""
    assert world.install(GRANT).status_code == 200
    world.teams[TEAM] = Installed(TEAM, ORG, org_wide=True)
    world.slack.add_channel(CHANNEL, "general")


def answered(world: Many, text: str) -> tuple[str | None, dict[str, Any]]:
    """A mention in the workspace's channel: its turn's status once ended (None: not within 15 s), its event."""
    event, answer = world.mention(text, CHANNEL, TEAM)
    assert answer.status_code == 200, answer.text
    inbox_drained(world.db)
    deadline = time.time() + 15
    status = None
    while time.time() < deadline:
        with sqlite3.connect(world.db) as conn:
            row = conn.execute("SELECT status FROM turns WHERE message_ts=?", (event["ts"],)).fetchone()
        status = row[0] if row else None
        if status not in (None, "received", "running"):
            break
        time.sleep(0.2)
    return status, event


def test_an_org_wide_install_answers_a_workspace_whose_first_request_is_a_mention(tmp_path: Path) -> None:
    with grid(tmp_path) as world:
        installed(world)
        status, _ = answered(world, "hello dora")
        with sqlite3.connect(world.db) as conn:
            seen = conn.execute("SELECT team_id, enterprise_id FROM slack_workspaces").fetchall()
        assert status == "done", f"turn status={status}; slack_workspaces={seen}\n" + world.bridge.logs()[-3000:]


def test_an_org_wide_reinstall_granting_chat_write_customize_names_the_agents_again(tmp_path: Path) -> None:
    with grid(tmp_path) as world:
        world.slack.scopes = ",".join(s for s in DEFAULT_SCOPES.split(",") if s != "chat:write.customize")
        installed(world)
        status, before = answered(world, "names?")
        [post] = world.slack.posts(CHANNEL, before["ts"])
        assert status == "done" and post.args["text"].startswith("*dora*") and not post.args.get("username")

        world.slack.scopes = DEFAULT_SCOPES  # the org admin installs again, granting the scope
        installed(world)
        status, after = answered(world, "names now?")
        [post] = world.slack.posts(CHANNEL, after["ts"])
        assert post.args.get("username") == "dora", (post.args, world.bridge.logs()[-2000:])
        assert not post.args["text"].startswith("*dora*"), post.args
