"""`init --force` over a config.toml that `serve` refuses (the very thing a newcomer re-runs init to
repair) kept the refused settings as they were, said "Wrote config.toml", exited 0 and ended with "Start the
bridge: python -m bridge serve", which then stopped at once (exit 2) on the settings init had kept."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def test_init_does_not_end_with_start_the_bridge_over_a_file_serve_refuses(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db")
        env.pop("DATABASE_URL")
        config = tmp_path / "config.toml"
        config.write_text(
            'slack_bot_token = "xoxb-old"\nport = "abc"\nletta_group_runnr = "bridge"\nlog_level = "info"\n'
            '[slack]\nchannel = "C1"\n'
        )
        config.chmod(0o600)
        assert run_cli({k: v for k, v in env.items() if not k.startswith(("SLACK_", "LETTA_"))}, "check",
                       cwd=tmp_path).returncode == 2  # the file as it was: refused

        done = run_cli(env, "init", "--non-interactive", "--force", cwd=tmp_path)
        bare = {k: v for k, v in env.items() if k not in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_BASE_URL",
                                                         "SLACK_API_URL")}
        after = run_cli(bare, "check", cwd=tmp_path)
        said = done.stdout + done.stderr
        # Either init writes a file the bridge starts from, or it does not tell the newcomer to start it.
        assert after.returncode != 2 or (done.returncode != 0 and "Start the bridge" not in said), (
            f"init exit {done.returncode}, said:\n{said[-700:]}\n--- check: {after.returncode}:\n{after.stderr}"
        )
        # Preferred: the refused settings are left out, each named with why, and the rest kept.
        assert done.returncode == 0 and after.returncode != 2, said
        assert "Not kept" in done.stdout and "port" in done.stdout and "letta_group_runner?" in done.stdout, said
        written = config.read_text()
        assert 'log_level = "info"' in written and "slack" in done.stdout and "channel" not in written, written
        assert "letta_group_runnr" not in written and 'port = "abc"' not in written, written


def test_init_over_settings_that_only_together_are_refused_does_not_say_start(tmp_path: Path) -> None:
    """No one key to leave out: the file is written as it would be, and init says why it will not load instead of
    how to start the bridge."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db")
        env.pop("DATABASE_URL")
        (tmp_path / "config.toml").write_text('slack_approve_by = "users"\n')
        done = run_cli(env, "init", "--non-interactive", "--force", cwd=tmp_path)
    assert done.returncode == 1 and "Start the bridge" not in done.stdout, done.stdout + done.stderr
    assert "SLACK_APPROVE_USERS" in done.stderr and "python -m bridge check" in done.stderr, done.stderr


def test_init_over_a_file_the_environment_completes_ends_as_it_starts(tmp_path: Path) -> None:
    """revCM: slack_approve_by = "users" in the file, SLACK_APPROVE_USERS in the environment (which wins over the
    file): `check` and `serve` load it, yet init said the bridge "will not start" and exited 1."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db")
        env.pop("DATABASE_URL")
        env["SLACK_APPROVE_USERS"] = "U012ABCDEF"
        config = tmp_path / "config.toml"
        config.write_text('slack_approve_by = "users"\n')
        config.chmod(0o600)
        done = run_cli(env, "init", "--non-interactive", "--force", cwd=tmp_path)
        after = run_cli(env, "check", cwd=tmp_path)
    said = done.stdout + done.stderr
    assert after.returncode == 0, after.stdout + after.stderr
    assert done.returncode == 0 and "will not start" not in said and "Start the bridge" in said, said
    assert "the environment sets what the file lacks" in said, said
