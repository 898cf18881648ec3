"""docs/security.md: credentials in a URL are never shown (`check` and every log line show
`http://***@letta:8283`). A URL whose scheme has a typo (`http//`, `http:/`, `http:///`) is refused as having no
scheme or no host, and the refusal repeats the whole URL, password included, on stderr (and, with LOG_FORMAT=json,
in the log line a platform keeps). Found by review revDY."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import base_env, run_cli

PW = "PWSECRET99"


@pytest.mark.parametrize("command", ["check", "serve"])
@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("LETTA_BASE_URL", f"http//proxyuser:{PW}@letta.internal:8283"),
        ("LETTA_BASE_URL", f"http:/proxyuser:{PW}@letta.internal:8283"),
        ("LETTA_BASE_URL", f"https:///proxyuser:{PW}@letta.internal:8283"),
        ("SLACK_API_URL", f"https//user:{PW}@slack.internal/api/"),
    ],
)
def test_a_url_with_a_mistyped_scheme_never_shows_its_password(
    tmp_path: Path, command: str, variable: str, url: str
) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", PORT="0")
    env[variable] = url
    for fmt in ("text", "json"):
        done = run_cli({**env, "LOG_FORMAT": fmt}, command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert PW not in done.stdout + done.stderr, done.stderr
