"""The installer's browser opens the redirect page again after a finished install (a reload, the back
button, a second tab restored). Before, the bridge answered "The app was not installed ... Nothing was installed",
though the workspace was installed and served (found by review revDO). The bridge cannot tell a replayed link from
a stranger's, so the page says the link cannot be used again, and that a finished install is in Slack."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import ACME
from tests.fakes.slack import Grant


def test_the_redirect_page_opened_again_after_an_install_does_not_say_nothing_was_installed(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        authorize, cookie = world.install_page()
        world.slack.install_next(Grant(ACME, "Acme"))
        approved = httpx.get(authorize, follow_redirects=False, timeout=10)
        query = approved.headers["location"].split("?", 1)[1]
        first = world.redirect(query, cookie)
        assert first.status_code == 200, first.text
        assert "slack-app-oauth-state=deleted" in first.headers.get("set-cookie", "")  # the browser drops it
        assert ACME in world.cli("workspaces", "list").stdout  # installed

        again = httpx.get(f"{world.bridge.url}/slack/oauth_redirect?{query}", timeout=10)  # reloaded, no cookie
        assert "Nothing was installed" not in again.text and "was not installed" not in again.text, again.text
        assert "If you just finished installing, the app is installed" in again.text, again.text
