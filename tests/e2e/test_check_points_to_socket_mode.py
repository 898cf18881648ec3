"""A Socket Mode set-up as README describes it (init with SLACK_APP_TOKEN exported and no public URL, no signing
secret written), checked from a new shell where the app token is not exported: `check` and `serve` say a signing
secret is missing and, in the same words, that Socket Mode needs none but wants SLACK_APP_TOKEN exported and
`python -m bridge socket` run; `init`, which they point to, would now ask for the signing secret instead."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

SOCKET_HINT = (
    "For Socket Mode, which needs no signing secret: export SLACK_APP_TOKEN (the xapp- token) and run "
    "`python -m bridge socket`."
)


def test_check_of_a_socket_mode_config_without_the_app_token_says_to_export_it(tmp_path: Path) -> None:
    """`check` after a Socket Mode init, in a shell without SLACK_APP_TOKEN, exits 2 naming the missing signing
    secret and saying to export SLACK_APP_TOKEN for `socket`; with it exported again, it passes."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", SLACK_APP_TOKEN="xapp-test-token")
        for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_BASE_URL"):
            env.pop(name)
        done = run_cli(
            env, "init", "--non-interactive", "--slack-bot-token", BOT_TOKEN, "--letta-base-url", letta.base_url,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert "-m bridge socket" in done.stdout
        assert "slack_signing_secret" not in (tmp_path / "config.toml").read_text()
        shell = {k: v for k, v in env.items() if k != "SLACK_APP_TOKEN"}  # a new shell
        checked = run_cli(shell, "check", cwd=tmp_path)
        again = run_cli(env, "check", cwd=tmp_path)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "missing SLACK_SIGNING_SECRET" in checked.stdout, checked.stdout
    assert SOCKET_HINT in checked.stderr, checked.stderr
    assert again.returncode == 0, again.stdout + again.stderr


def test_serve_without_a_signing_secret_or_app_token_names_socket_mode_too(tmp_path: Path) -> None:
    """`serve` with a bot token but neither a signing secret nor an app token says the same hint; without the bot
    token as well there is nothing set up for Socket Mode either, and no hint."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db")
    del env["SLACK_SIGNING_SECRET"]
    served = run_cli(env, "serve", cwd=tmp_path)
    bare = run_cli({k: v for k, v in env.items() if k != "SLACK_BOT_TOKEN"}, "serve", cwd=tmp_path)
    assert served.returncode == 2 and "missing SLACK_SIGNING_SECRET" in served.stderr, served.stderr
    assert SOCKET_HINT in served.stderr, served.stderr
    assert bare.returncode == 2 and SOCKET_HINT not in bare.stderr, bare.stderr
