"""`python -m bridge init` run without a terminal (a `docker run` without -it, a CI step, stdin redirected)
does not ask anything, and said only "missing --slack-bot-token (or SLACK_BOT_TOKEN); ..." - not that it asked
nothing because there was no terminal, so a newcomer who typed the README's `python -m bridge init` is left to
guess why the questions never came."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import base_env, run_cli  # run_cli gives the command /dev/null as stdin, as cron or CI would


def test_init_without_a_terminal_says_why_it_asked_nothing(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "unused.db")
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "LETTA_BASE_URL", "DATABASE_URL", "SLACK_API_URL"):
        env.pop(name)
    done = run_cli(env, "init", cwd=tmp_path)  # no --non-interactive: the user expects questions
    assert done.returncode == 2, done.stderr
    assert "terminal" in done.stderr, done.stderr
