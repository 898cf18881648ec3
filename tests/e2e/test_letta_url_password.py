"""A Letta URL whose password (for a proxy in front of Letta, config.example.toml) holds a character that must be
percent-encoded: said as such, and never shown. Before, a space let `check` and `channels connect` print the
password, and a # was said to be "a port that is not a number"."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import base_env, run_cli
from tests.fakes.slack import FakeSlack


def test_a_space_in_the_letta_url_password_is_masked_by_check(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        env = base_env(slack.api_url, "http://proxyuser:PW SECRET-9@127.0.0.1:9", tmp_path / "b.db")
        done = run_cli(env, "check", cwd=tmp_path)
        assert "SECRET-9" not in done.stdout + done.stderr, done.stdout + done.stderr
        connect = run_cli(env, "channels", "connect", "C0123ABC", "agent-00000000-0000-4000-8000-000000000001",
                          cwd=tmp_path)
        assert "SECRET-9" not in connect.stdout + connect.stderr, connect.stderr


def test_a_hash_in_the_letta_url_password_is_said_to_need_percent_encoding(tmp_path: Path) -> None:
    """DATABASE_URL says "(# as %23)"; LETTA_BASE_URL said "has a port that is not a number" of a URL whose port is
    8283."""
    env = base_env("http://127.0.0.1:9/api/", "http://proxyuser:pa#ss@127.0.0.1:8283", tmp_path / "b.db")
    done = run_cli(env, "check", cwd=tmp_path)
    assert done.returncode == 2
    assert "port that is not a number" not in done.stderr, done.stderr
    assert "%23" in done.stderr, done.stderr
