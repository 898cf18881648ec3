"""Socket Mode needs no signing secret (README; `check` asks for none there), so `init` set up for Socket Mode
(SLACK_APP_TOKEN exported or kept in the file it replaces, no public URL) must not stop for the lack of one; a
signing secret given is still checked and written, and a public URL (HTTP mode) still needs it."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.test_init import Terminal, bare_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

APP_TOKEN = "xapp-1-A0123-456-abcdef"


def test_socket_mode_init_needs_no_signing_secret(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN)
        env.pop("SLACK_SIGNING_SECRET", None)
        done = run_cli(env, "init", "--non-interactive", "--letta-base-url", letta.base_url, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "signing secret: not given; Socket Mode needs none" in done.stdout, done.stdout
        written = (tmp_path / "config.toml").read_text()
        assert "slack_signing_secret" not in written, written
        assert "-m bridge socket" in done.stdout[done.stdout.index("Start the bridge"):]
        checked = run_cli(dict(env, BRIDGE_CONFIG=str(tmp_path / "config.toml")), "check", cwd=tmp_path)
    assert "signing" not in checked.stdout.lower() or "needs none" in checked.stdout, checked.stdout
    assert "missing" not in (checked.stdout + checked.stderr).lower(), checked.stdout + checked.stderr


def test_socket_mode_from_the_file_replaced_needs_no_signing_secret(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'slack_app_token = "{APP_TOKEN}"\nslack_signing_secret = "{SIGNING_SECRET}"\n'
    )
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN)
        env.pop("SLACK_SIGNING_SECRET", None)
        env.pop("SLACK_APP_TOKEN", None)
        done = run_cli(env, "init", "--non-interactive", "--force", "--letta-base-url", letta.base_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "config.toml").read_text()
    assert f'slack_signing_secret = "{SIGNING_SECRET}"' in written, written  # not given: the file's is kept
    assert "slack_app_token" in written, written


def test_a_given_signing_secret_is_still_written_in_socket_mode(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN,
                   SLACK_SIGNING_SECRET=SIGNING_SECRET)
        done = run_cli(env, "init", "--non-interactive", "--letta-base-url", letta.base_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f'slack_signing_secret = "{SIGNING_SECRET}"' in (tmp_path / "config.toml").read_text()


def test_with_a_public_url_the_signing_secret_is_still_needed(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=APP_TOKEN)
        env.pop("SLACK_SIGNING_SECRET", None)
        done = run_cli(env, "init", "--non-interactive", "--letta-base-url", letta.base_url,
                       "--public-url", "https://bridge.acme.test", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "missing --slack-signing-secret (or SLACK_SIGNING_SECRET)" in done.stderr, done.stderr
    assert not (tmp_path / "config.toml").exists()


def test_in_a_terminal_socket_mode_offers_to_skip_the_signing_secret(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_APP_TOKEN=APP_TOKEN)
        term = Terminal(env, tmp_path)
        term.answer("Public https URL", "")
        term.expect("in Socket Mode the Signing Secret may be skipped")
        term.answer("Slack bot token (xoxb-…): ", BOT_TOKEN)
        term.answer("Slack signing secret (Enter to skip: Socket Mode needs none): ", "")
        term.expect("signing secret: not given; Socket Mode needs none")
        term.answer("Letta server URL", letta.base_url)
        term.answer("Letta API key (Enter for none): ", "")
        code, screen = term.finish()
    assert code == 0, screen
    assert "slack_signing_secret" not in (tmp_path / "config.toml").read_text()
    assert "-m bridge socket" in screen[screen.index("Start the bridge"):], screen
