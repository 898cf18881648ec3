"""`serve` refuses a Slack token pasted into the wrong setting, as `check` does (exit 2, the setting named by the
token's kind, never its value): a bot token in SLACK_APP_TOKEN made `check` exit 2 while `serve` started anyway."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge import cli, serve


def test_serve_with_a_bot_token_in_slack_app_token_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here
    for key in list(os.environ):
        if key.startswith(("SLACK_", "LETTA_", "HTTP_", "DATABASE_", "BRIDGE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1-2-abc")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "e2e-signing-secret-0123456789abcdef")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xoxb-3-4-pasted-here")
    monkeypatch.setenv("LETTA_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'b.db'}")
    monkeypatch.setenv("HTTP_INGRESS", "thread")
    started: list[bool] = []

    async def serve_http(*_: object) -> None:
        started.append(True)

    monkeypatch.setattr(serve, "serve_http", serve_http)
    monkeypatch.setattr(cli, "setup_logging", lambda *_: None)  # pytest's logging stays
    try:
        code = cli.main(["serve"])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and not started, err
    assert "SLACK_APP_TOKEN is a bot token (xoxb-…)" in err
    assert "pasted-here" not in err
