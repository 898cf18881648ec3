"""The install's pages as the installer sees them: each way it can fail said in plain words, with the way back."""

from __future__ import annotations

import html
import re
import sqlite3
from pathlib import Path

from tests.e2e.oauth import many_world
from tests.fakes.slack import Grant

ACME = "T0ACME001"


def said(page: str) -> str:
    """The page's words, without its markup."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_each_failed_install_says_what_happened_and_how_to_start_again(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        _, cookie = world.install_page()
        cancelled = world.redirect(f"error=access_denied&state={cookie}", cookie)
        assert "The install was cancelled in Slack" in said(cancelled.text), cancelled.text

        another = world.redirect(f"code=x&state={cookie}", "another")
        assert another.status_code == 400
        assert "opened in another browser" in said(another.text), another.text

        forged = world.redirect("code=x&state=forged.state", "forged.state")
        assert forged.status_code == 401
        assert "expired or was already used" in said(forged.text), forged.text

        _, cookie = world.install_page()
        refused = world.redirect(f"code=not-a-code&state={cookie}", cookie)
        assert refused.status_code == 401
        assert "Slack did not accept the install's code" in said(refused.text), refused.text

        # Slack grants the install but fails to confirm its bot token (auth.test, its own trouble): nothing is
        # saved, and the page says so rather than blaming the code.
        world.slack.fail_next("auth.test", error="internal_error")
        half = world.install(Grant(ACME, "Acme"))
        assert half.status_code == 503
        assert "did not confirm the app's bot token" in said(half.text), half.text
        with sqlite3.connect(world.db) as db:
            assert db.execute("SELECT count(*) FROM slack_installations").fetchone()[0] == 0

        for page in (cancelled, another, forged, refused, half):
            assert "Oops" not in page.text and "reason:" not in page.text
            assert 'href="/slack/install"' in page.text  # the way back
        assert "not-a-code" not in world.bridge.logs()  # a code is a credential for ten minutes

        assert world.install(Grant(ACME, "Acme")).status_code == 200  # started again, it works
