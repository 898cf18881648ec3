"""`workspaces list` decrypts each workspace's own Letta API key, which it never shows. Without
BRIDGE_ENCRYPTION_KEY (workspace_admin.installation_store: "Listing and removing decrypt nothing: without the key,
a throwaway one stands in"; `workspaces remove` works so, test_workspaces_remove), the listing fails as soon as one
workspace has set its own server with `/letta setup`, instead of listing the workspaces (found by review revDO).
A command that needs the key says in words that it is not set, not with a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import run_cli
from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import ACME, BETA
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import Grant


def test_workspaces_list_without_the_key_lists_a_workspace_on_its_own_server(tmp_path: Path) -> None:
    other = FakeLetta(version="0.16.8", api_key="sk-beta-letta")
    other.start()
    try:
        with many_world(tmp_path) as world:
            assert world.install(Grant(ACME, "Acme")).status_code == 200
            assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
            keyless = {k: v for k, v in world.env.items() if k != "BRIDGE_ENCRYPTION_KEY"}
            before = run_cli(keyless, "workspaces", "list")
            assert before.returncode == 0 and ACME in before.stdout and BETA in before.stdout, before.stderr

            saved = world.submit_setup(BETA, other.base_url, "sk-beta-letta")
            assert saved.status_code == 200 and "update" in saved.text, saved.text
            after = run_cli(keyless, "workspaces", "list")
            assert after.returncode == 0, (after.returncode, after.stdout, after.stderr)
            assert ACME in after.stdout and BETA in after.stdout, after.stdout
            assert other.base_url in after.stdout, after.stdout  # a URL in the clear is shown without the key
    finally:
        other.stop()


@pytest.mark.parametrize("command", ["/letta", "/crew"])
def test_channels_connect_for_a_workspace_on_its_own_server_without_the_key_says_why_in_words(
    tmp_path: Path, command: str
) -> None:
    """The words name where the secret was set, by the command's configured name (SLACK_COMMAND). Before: 'the
    slash command's setup', though the bridge knows that name."""
    other = FakeLetta(version="0.16.8", api_key="sk-beta-letta")
    other.start()
    try:
        with many_world(tmp_path) as world:
            assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
            assert world.submit_setup(BETA, other.base_url, "sk-beta-letta").status_code == 200
            bruno = other.add_agent("bruno")
            keyless = {k: v for k, v in world.env.items() if k != "BRIDGE_ENCRYPTION_KEY"}
            done = run_cli({**keyless, "SLACK_COMMAND": command}, "channels", "connect", "C0BETA001", bruno,
                           "--team", BETA)
            assert "Traceback" not in done.stderr, done.stderr[-600:]
            assert done.returncode == 1, (done.returncode, done.stderr)
            assert "BRIDGE_ENCRYPTION_KEY is not set" in done.stderr and "key changed" not in done.stderr, done.stderr
            assert f"set with {command} setup in Slack)" in done.stderr, done.stderr
    finally:
        other.stop()
