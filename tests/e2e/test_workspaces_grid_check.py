"""An org-wide (Enterprise Grid) install whose workspaces are on Letta servers of their own: `check` asks each
server and counts each workspace's channels, and `workspaces list` names the servers. Before, both looked at the
default server only (and counted 0 channels), and `check` passed with one workspace's server down."""

from __future__ import annotations

import copy
from pathlib import Path

import httpx

from tests.e2e.oauth import ADMIN, FORM, Installed, Many, many_world
from tests.e2e.test_workspaces import bind
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body
from tests.fakes.slack import Grant
from tests.reference import SLACK, load

ORG, GA, GB = "E0ORG0001", "T0GRIDA01", "T0GRIDB02"


def submit_org_setup(world: Many, team: str, url: str, key: str) -> httpx.Response:
    """`/letta setup`'s form as Slack submits it under an org-wide install: the org named, is_enterprise_install."""
    payload = copy.deepcopy(load(SLACK / "interactivity" / "view_submission.json"))
    payload["team"]["id"] = payload["user"]["team_id"] = team
    payload["view"]["team_id"] = payload["view"]["app_installed_team_id"] = team
    payload["user"]["id"] = ADMIN
    payload["enterprise"] = {"id": ORG, "name": "Acme Org"}
    payload["is_enterprise_install"] = True
    values = payload["view"]["state"]["values"]
    values["letta_url"]["url"]["value"] = url
    values["letta_key"]["key"]["value"] = key
    return world.bridge.post(action_body(payload), content_type=FORM)


def test_check_and_list_look_at_each_org_workspaces_own_letta_server(tmp_path: Path) -> None:
    other = FakeLetta(version="0.16.8", api_key="sk-grid-a")
    other.start()
    try:
        with many_world(tmp_path) as world:
            grant = Grant(None, "", enterprise_id=ORG, enterprise_name="Acme Org", org_wide=True)
            assert world.install(grant).status_code == 200
            for team in (GA, GB):
                world.teams[team] = Installed(team, ORG, org_wide=True)
            ack, _ = world.command("setup", "C0GRIDA01", GA)
            assert ack.status_code == 200, ack.text
            saved = submit_org_setup(world, GA, other.base_url, "sk-grid-a")
            assert saved.status_code == 200 and "update" in saved.text, saved.text
            bind(world, GA, "C0GRIDA01", other, ("alice",))
            bind(world, GB, "C0GRIDB02", world.letta, ("bob",))
            listing = world.cli("workspaces", "list")
            assert other.base_url in listing.stdout and "default" in listing.stdout, listing.stdout
            assert world.cli("check").returncode == 0
            other.stop()  # workspace A's own server goes down
            check = world.cli("check")
            [line] = [line for line in check.stdout.splitlines() if f"workspace {ORG}" in line]
            assert check.returncode == 1 and line.startswith("FAIL"), check.stdout
            assert other.base_url in line and "2 channels" in line, line
    finally:
        other.stop()
