"""Grid: a workspace with its own install beside its org's org-wide one uninstalls its own (app_uninstalled). The
org-wide install still serves it, so it is not taken as removed: its channel bindings are not scheduled for
deletion and the log says it stays served. Before, it was removed like a workspace left with no install."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces_grid_check import ORG
from tests.fakes.signing import slack_json
from tests.fakes.slack import Grant
from tests.reference import SLACK, load

OWN = "T0GRIDOWN"


def test_uninstalling_a_workspace_s_own_install_keeps_it_served_by_its_org_s(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        org_wide = Grant(None, "", enterprise_id=ORG, enterprise_name="Acme Org", org_wide=True)
        assert world.install(org_wide).status_code == 200
        assert world.install(Grant(OWN, "Own", enterprise_id=ORG, enterprise_name="Acme Org")).status_code == 200
        event = load(SLACK / "events" / "app_uninstalled.json")
        event.update(team_id=OWN, enterprise_id=ORG, event_id="EvUninstOwn", event_time=int(time.time()))
        assert world.bridge.post(slack_json(event)).status_code == 200
        world.slack.wait_for(lambda: any(s in world.bridge.logs() for s in ("workspace removed", "still served")), 10)
        assert "workspace still served by its org's install" in world.bridge.logs()
        with sqlite3.connect(world.db) as db:
            rows = db.execute("SELECT removed_at FROM slack_workspaces WHERE team_id=?", (OWN,)).fetchall()
            kinds = db.execute("SELECT team_id FROM slack_installations").fetchall()
        assert all(removed is None for (removed,) in rows), rows
        assert kinds == [("",)], kinds  # only the org-wide install is left
