"""`init` against a Letta App Server started with a capability token (README: "LETTA_API_KEY is the server's
capability token where it uses one"), which answers GET /app-server-info 401 without it (capture
auth-http-app-server-info-missing.json): the URL is checked with the key when it is given; in a terminal, the URL
step says the token is asked next, and the key question checks it."""

from __future__ import annotations

import tomllib
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


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_init_sets_up_an_app_server_that_uses_a_token(app_server: FakeAppServer, tmp_path: Path, how: str) -> None:
    with FakeSlack() as slack:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
        args = ["init", "--non-interactive", "--letta-base-url", app_server.url]
        if how == "flag":
            args += ["--letta-api-key", TOKEN]
        else:
            env["LETTA_API_KEY"] = TOKEN
        done = run_cli(env, *args, cwd=tmp_path)
        assert "rejected the API key" not in done.stdout, done.stdout[-800:]
        assert done.returncode == 0, done.stderr
        assert tomllib.loads((tmp_path / "config.toml").read_text())["letta_api_key"] == TOKEN
        # What init wrote is what `check` passes with.
        assert run_cli(env, "check", cwd=tmp_path).returncode == 0


def test_init_in_a_terminal_asks_the_app_servers_token_instead_of_the_url_again(
    app_server: FakeAppServer, tmp_path: Path
) -> None:
    from tests.e2e.test_init import Terminal

    with FakeSlack() as slack:
        term = Terminal(bare_env(slack, tmp_path), tmp_path)
        term.answer("Public https URL", "")
        term.answer("Slack bot token (xoxb-…): ", BOT_TOKEN)
        term.answer("Slack signing secret: ", SIGNING_SECRET)
        term.answer("Letta server URL", app_server.url)
        term.expect("Letta API key (Enter for none): ", timeout=10)
        term._read(0.2)
        term.answer("", TOKEN)
        code, screen = term.finish()
    assert code == 0, screen
    assert "it needs its capability token: you will be asked for it next" in screen, screen
    assert "ok   letta key: accepted" in screen, screen


def test_init_without_the_app_servers_token_says_why_it_stops(app_server: FakeAppServer, tmp_path: Path) -> None:
    with FakeSlack() as slack:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
        done = run_cli(env, "init", "--non-interactive", "--letta-base-url", app_server.url, cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-800:]
    assert "it needs its capability token: give it as --letta-api-key" in done.stdout, done.stdout[-800:]
    # The key step's refusal is said, not only "see above" with nothing above.
    assert "FAIL letta: " in done.stdout.split("needs its capability token")[1], done.stdout[-800:]
    assert not (tmp_path / "config.toml").exists()
