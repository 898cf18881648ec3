"""A workspace on a Letta server of its own (`/letta setup`, OAuth mode) whose key Letta stops taking: the thread
names where that key was set, never LETTA_API_KEY (which is not that workspace's key), and never the key."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import BETA, bind, done
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import Grant

KEY = "sk-beta-letta"


def test_a_workspace_key_letta_refuses_is_said_to_come_from_letta_setup(tmp_path: Path) -> None:
    """Before, the thread said 'An operator needs to check LETTA_API_KEY': the operator's variable, which that
    workspace's admins cannot see and which did not hold the refused key."""
    other = FakeLetta(version="0.16.8", api_key=KEY)
    other.start()
    try:
        with many_world(tmp_path) as world:
            assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
            ack, _ = world.command("setup", "C0BETA001", BETA)
            assert ack.status_code == 200
            saved = world.submit_setup(BETA, other.base_url, KEY)
            assert saved.status_code == 200 and "update" in saved.text, saved.text
            bind(world, BETA, "C0BETA001", other, ("bruno",))
            other.api_key = "sk-rotated"  # the key was revoked on the Letta server
            event, _ = world.mention("still there?", "C0BETA001", BETA)
            done(world, "C0BETA001", event["ts"])
            [post] = world.slack.posts("C0BETA001", event["ts"])
            text = post.args["text"]
            assert "rejected" in text and "HTTP 401" in text, text
            assert "`/letta setup`" in text and "workspace admin or owner" in text, text
            assert "LETTA_API_KEY" not in text and KEY not in text
    finally:
        other.stop()
