"""revBS, docs/operations.md: a command used wrongly (a channel id that is not one by its form) is exit 2, said before
anything is looked up. With no database file yet, `channels disconnect general` and `channels list --team garbage`
answered "no channels are connected yet" instead (exit 1 and 0)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import base_env, run_cli

NOBODY = "http://127.0.0.1:9"


def test_a_malformed_channel_id_is_exit_2_even_before_the_database_exists(tmp_path: Path) -> None:
    env = base_env(f"{NOBODY}/api/", NOBODY, tmp_path / "b.db")
    done = run_cli(env, "channels", "disconnect", "general", cwd=tmp_path)
    assert (done.returncode, done.stderr.startswith("error: general is not a Slack channel id")) == (2, True), (
        done.returncode, done.stdout, done.stderr
    )


def test_a_malformed_team_id_is_exit_2_even_before_the_database_exists(tmp_path: Path) -> None:
    env = base_env(f"{NOBODY}/api/", NOBODY, tmp_path / "b.db")
    done = run_cli(env, "channels", "list", "--team", "garbage", cwd=tmp_path)
    assert (done.returncode, done.stderr.startswith("error: garbage is not a Slack workspace id")) == (2, True), (
        done.returncode, done.stdout, done.stderr
    )
