"""init lets the signing secret be skipped, and ends with `python -m bridge socket`, only where the bridge would
run over Socket Mode: an app-level token with text in it and no OAuth (checks.py and cli.py decide so). A blank
token in the file replaced, or OAuth settings beside a token, mean `serve`, which needs the signing secret."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, run_cli
from tests.e2e.test_init import bare_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

APP_TOKEN = "xapp-1-A0123-456-abcdef"
OAUTH = 'slack_client_id = "123.456"\nslack_client_secret = "0123456789abcdef"\n'
STATE = 'slack_state_secret = "0123456789abcdef0123456789abcdef"\n'

Run = subprocess.CompletedProcess[str]


def _init(tmp_path: Path, file_text: str, **env_extra: str) -> tuple[Run, Run, str]:
    (tmp_path / "config.toml").write_text(file_text)
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = dict(bare_env(slack, tmp_path), SLACK_BOT_TOKEN=BOT_TOKEN, **env_extra)
        if "SLACK_SIGNING_SECRET" not in env_extra:
            env.pop("SLACK_SIGNING_SECRET", None)
        if "SLACK_APP_TOKEN" not in env_extra:
            env.pop("SLACK_APP_TOKEN", None)
        done = run_cli(env, "init", "--non-interactive", "--force", "--letta-base-url", letta.base_url, cwd=tmp_path)
        checked = run_cli(dict(env, BRIDGE_CONFIG=str(tmp_path / "config.toml")), "check", cwd=tmp_path)
    path = tmp_path / "config.toml"
    return done, checked, path.read_text() if path.exists() else ""


def _said(done: Run, checked: Run, written: str) -> str:
    return f"init exited {done.returncode}; wrote:\n{written}\nsaid:\n{done.stdout}{done.stderr}\ncheck said:\n" + (
        checked.stdout + checked.stderr
    )


def test_oauth_settings_in_the_replaced_file_still_need_the_signing_secret(tmp_path: Path) -> None:
    done, checked, written = _init(tmp_path, f'slack_app_token = "{APP_TOKEN}"\n{OAUTH}{STATE}')
    assert done.returncode == 2, _said(done, checked, written)
    assert "missing --slack-signing-secret" in done.stderr, _said(done, checked, written)


def test_a_blank_app_token_in_the_replaced_file_does_not_let_the_signing_secret_be_skipped(tmp_path: Path) -> None:
    done, checked, written = _init(tmp_path, 'slack_app_token = " "\n')
    assert done.returncode == 2, _said(done, checked, written)
    assert "missing --slack-signing-secret" in done.stderr, _said(done, checked, written)


def test_an_exported_app_token_with_oauth_in_the_environment_still_needs_the_signing_secret(tmp_path: Path) -> None:
    done, checked, written = _init(
        tmp_path, STATE, SLACK_APP_TOKEN=APP_TOKEN, SLACK_CLIENT_ID="123.456", SLACK_CLIENT_SECRET="0123456789abcdef"
    )
    assert done.returncode == 2, _said(done, checked, written)
    assert "missing --slack-signing-secret" in done.stderr, _said(done, checked, written)


def test_with_oauth_in_the_file_init_ends_with_serve_even_with_an_exported_app_token(tmp_path: Path) -> None:
    done, checked, written = _init(
        tmp_path, OAUTH + STATE, SLACK_APP_TOKEN=APP_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET
    )
    assert done.returncode == 0, _said(done, checked, written)
    start = done.stdout[done.stdout.index("Start the bridge"):]
    assert "-m bridge serve" in start and "SLACK_APP_TOKEN" not in start, start


def test_a_blank_app_token_kept_ends_with_serve(tmp_path: Path) -> None:
    done, checked, written = _init(tmp_path, 'slack_app_token = " "\n', SLACK_SIGNING_SECRET=SIGNING_SECRET)
    assert done.returncode == 0, _said(done, checked, written)
    start = done.stdout[done.stdout.index("Start the bridge"):]
    assert "-m bridge serve" in start and "slack_app_token" not in start, start
