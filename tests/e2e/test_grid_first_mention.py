"""revAI: an org-wide (Enterprise Grid) install, a workspace of the org whose first request is an event (a mention
answered by DEFAULT_TARGET, no /letta command run there yet): its turn must be answered, not ended `uninstalled`."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.e2e.harness import BridgeProcess, inbox_drained
from tests.e2e.oauth import ADMIN, Installed, Many, oauth_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack, Grant

ORG, TEAM, CHANNEL = "E0ORG0001", "T0GRIDA01", "C0GRIDA01"


def test_an_org_wide_install_answers_a_workspace_whose_first_request_is_a_mention(tmp_path: Path) -> None:
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
    world = Many(slack, letta, bridge, bridge.env, db)
    try:
        grant = Grant(None, "", enterprise_id=ORG, enterprise_name="Acme Org", org_wide=True)
        assert world.install(grant).status_code == 200
        world.teams[TEAM] = Installed(TEAM, ORG, org_wide=True)
        slack.add_channel(CHANNEL, "general")
        event, answer = world.mention("hello dora", CHANNEL, TEAM)
        assert answer.status_code == 200, answer.text
        inbox_drained(db)
        deadline = time.time() + 15
        status = None
        while time.time() < deadline:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT status FROM turns WHERE message_ts=?", (event["ts"],)).fetchone()
            status = row[0] if row else None
            if status not in (None, "received", "running"):
                break
            time.sleep(0.2)
        with sqlite3.connect(db) as conn:
            seen = conn.execute("SELECT team_id, enterprise_id FROM slack_workspaces").fetchall()
        assert status == "done", f"turn status={status}; slack_workspaces={seen}\n" + bridge.logs()[-3000:]
    finally:
        bridge.stop()
        letta.stop()
        slack.stop()
