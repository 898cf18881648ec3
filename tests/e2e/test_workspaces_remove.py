"""`python -m bridge workspaces remove` ends a workspace's tokens at Slack too (auth.revoke), not only here: a copy
of a removed workspace's bot token (a backup, a log, another host) stops working. When Slack does not revoke them
(it refuses the token, or cannot be reached), the workspace is removed here all the same and the output says so."""

from __future__ import annotations

from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from tests.e2e.harness import base_env, run_cli
from tests.e2e.oauth import many_world
from tests.fakes.slack import Grant

ACME, BETA, GAMMA, DELTA = "T0ACME001", "T0BETA002", "T0GAMMA03", "T0DELTA04"


def test_a_removed_workspace_s_token_is_revoked_at_slack_or_the_output_says_why_not(tmp_path: Path) -> None:
    """Before, removing only deleted the stored tokens: the bot token Slack had issued stayed valid."""
    with many_world(tmp_path) as world:
        for team in (ACME, BETA, GAMMA, DELTA):
            assert world.install(Grant(team, team.lower())).status_code == 200
        [acme_token] = world.slack.tokens_of(ACME)

        removed = world.cli("workspaces", "remove", ACME)
        assert removed.returncode == 0, removed.stderr
        assert "tokens are deleted" in removed.stdout and "Slack revoked its bot token" in removed.stdout
        [revoke] = world.slack.calls_to("auth.revoke")
        assert revoke.token == acme_token and revoke.response == {"ok": True, "revoked": True}
        refused = httpx.post(world.slack.api_url + "auth.test", headers={"Authorization": f"Bearer {acme_token}"})
        assert refused.json() == {"ok": False, "error": "token_revoked"}  # a copy of it no longer works
        assert acme_token not in removed.stdout + removed.stderr

        # Slack refuses the token: removed here all the same, and said plainly.
        world.slack.fail_next("auth.revoke", "invalid_auth")
        removed = world.cli("workspaces", "remove", BETA)
        assert removed.returncode == 0, removed.stderr
        assert "tokens are deleted" in removed.stdout, removed.stdout
        assert "Slack did not revoke its bot token" in removed.stdout and "invalid_auth" in removed.stdout
        assert "Removing the app from the workspace in Slack" in removed.stdout

        # Slack cannot be reached: the same.
        away = dict(world.env, SLACK_API_URL="http://127.0.0.1:9/api/")
        removed = run_cli(away, "workspaces", "remove", GAMMA)
        assert removed.returncode == 0, removed.stderr
        assert "tokens are deleted" in removed.stdout and "could not be reached" in removed.stdout, removed.stdout
        assert "Traceback" not in removed.stderr

        # Without BRIDGE_ENCRYPTION_KEY the tokens cannot be read: removed here, nothing asked of Slack.
        keyless = {k: v for k, v in world.env.items() if k != "BRIDGE_ENCRYPTION_KEY"}
        removed = run_cli(keyless, "workspaces", "remove", DELTA)
        assert removed.returncode == 0, removed.stderr
        assert "tokens are deleted" in removed.stdout and "BRIDGE_ENCRYPTION_KEY is not set" in removed.stdout
        assert len(world.slack.calls_to("auth.revoke")) == 2  # Acme's and Beta's; Gamma's never reached it

        listing = world.cli("workspaces", "list").stdout
        assert not {ACME, BETA, GAMMA, DELTA} & set(listing.split())


def test_workspaces_on_a_single_workspace_bridge_say_oauth_mode_is_off(tmp_path: Path) -> None:
    """With one bot token (no SLACK_CLIENT_ID), `workspaces list` said "send its admins to https://<your
    host>/slack/install", a page such a bridge does not serve."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db")
    for args in (("list",), ("remove", ACME)):
        done = run_cli(env, "workspaces", *args, cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done
        assert "/slack/install" not in done.stdout + done.stderr
        assert "OAuth mode is off (SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are not both set)" in done.stderr
        assert "docs/workspaces.md" in done.stderr


def test_workspaces_remove_where_no_database_exists_creates_none(tmp_path: Path) -> None:
    """In the wrong folder (or with a mistyped DATABASE_URL) `remove` left a new, empty database behind, which
    `check` then took for the bridge's and `serve` started on; `list` created none."""
    db = tmp_path / "bridge.db"
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", db, SLACK_CLIENT_ID="1.2",
                   SLACK_CLIENT_SECRET="client-secret", BRIDGE_ENCRYPTION_KEY=Fernet.generate_key().decode())
    del env["SLACK_BOT_TOKEN"]
    listed = run_cli(env, "workspaces", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "does not exist yet" in listed.stdout, listed.stdout + listed.stderr
    assert not db.exists()
    done = run_cli(env, "workspaces", "remove", "T0123ABCD", cwd=tmp_path)
    assert done.returncode == 1 and "has not installed the app" in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a new, empty database was created"


def test_workspaces_remove_takes_an_id_as_typed_and_refuses_what_is_no_id(tmp_path: Path) -> None:
    """`workspaces remove t0acme001` said "t0acme001 has not installed the app" (exit 1) for a workspace that had:
    Slack writes ids in upper case, as `--team` already reads them; a word that is no id at all is refused as
    one (exit 2) before the database is asked."""
    with many_world(tmp_path) as world:
        assert world.install(Grant(ACME, "acme")).status_code == 200
        wrong = world.cli("workspaces", "remove", "acme")
        assert wrong.returncode == 2 and "acme is not a Slack workspace id" in wrong.stderr, wrong.stderr
        assert ACME in world.cli("workspaces", "list").stdout
        removed = world.cli("workspaces", "remove", f" {ACME.lower()}")
        assert removed.returncode == 0 and "removed" in removed.stdout, removed.stdout + removed.stderr
        assert ACME not in world.cli("workspaces", "list").stdout.split()
