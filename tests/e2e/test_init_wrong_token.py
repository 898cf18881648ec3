"""init against an App Server with a capability token, given a wrong token (LETTA_API_KEY exported, or
--letta-api-key): the URL is right and the server answers; it is the key that is wrong. init should say so at
the key, and in a terminal ask the key again, not the URL again and again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.test_init import bare_env
from tests.fakes.appserver import FakeAppServer
from tests.fakes.slack import FakeSlack

TOKEN = "capability-token-for-init"


@pytest.fixture
def app_server() -> Iterator[FakeAppServer]:
    server = FakeAppServer(token=TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_init_in_a_terminal_with_a_wrong_exported_token_asks_the_token_not_the_url(
    app_server: FakeAppServer, tmp_path: Path
) -> None:
    from tests.e2e.test_init import Terminal

    with FakeSlack() as slack:
        term = Terminal(dict(bare_env(slack, tmp_path), LETTA_API_KEY="a-stale-token"), tmp_path)
        term.answer("Public https URL", "")
        term.answer("Slack bot token (xoxb-…): ", BOT_TOKEN)
        term.answer("Slack signing secret: ", SIGNING_SECRET)
        term.answer("Letta server URL", app_server.url)
        # The URL is right: the next question is the key (the exported one was refused), not the URL again.
        term.expect("Letta API key (Enter for none): ", timeout=10)
        term._read(0.2)
        term.answer("", TOKEN)
        code, screen = term.finish()
    assert code == 0, screen
    assert "it refused the token given (HTTP 401), checked next" in screen, screen
    assert "ok   letta key: accepted" in screen, screen


def test_init_non_interactive_with_a_wrong_token_blames_the_key_not_the_url(
    app_server: FakeAppServer, tmp_path: Path
) -> None:
    with FakeSlack() as slack:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
        args = ["init", "--non-interactive", "--letta-base-url", app_server.url, "--letta-api-key", "wrong"]
        done = run_cli(env, *args, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-800:]
    said = done.stdout + done.stderr
    assert "LETTA_BASE_URL did not pass its check" not in said, said[-800:]
    assert "LETTA_API_KEY did not pass its check" in said, said[-800:]
    assert "rejected the API key" in done.stdout.split("checked next")[1], said[-800:]
    assert not (tmp_path / "config.toml").exists()
