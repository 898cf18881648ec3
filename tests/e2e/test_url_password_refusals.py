"""`bridge init --letta-base-url` with a URL whose password holds a raw / ? or # and a raw @ (several @) printed the
part of the password after its first @ in the refusal; one whose IPv6 host is cut short crashed init with a
traceback, and the `/letta setup` form with a 500 (found by second reader revEA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.oauth import many_world
from tests.e2e.test_init import bare_env, fakes  # noqa: F401 (the fixture)
from tests.e2e.test_workspaces import BETA
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack, Grant

PW = "PWSECRET99"


@pytest.mark.parametrize(
    "url",
    [
        f"http://proxyuser:a/b@{PW}@letta.internal:8283",
        f"http://proxyuser:a?b@{PW}@letta.internal",
        f"http://proxyuser:{PW}@[::1",
    ],
)
def test_init_never_shows_a_url_password(fakes: tuple[FakeSlack, FakeLetta], tmp_path: Path, url: str) -> None:  # noqa: F811
    slack, _ = fakes
    env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    done = run_cli(env, "init", "--non-interactive", "--letta-base-url", url, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert PW not in done.stdout + done.stderr, done.stdout + done.stderr


def test_a_setup_url_with_a_cut_ipv6_host_is_refused_in_words(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
        world.command("setup", "C0BETA001", BETA)
        refused = world.submit_setup(BETA, "http://[::1:8283", "")
        assert refused.status_code == 200 and "The server URL is a full address" in refused.text, (
            refused.status_code, refused.text)

