"""`serve` with HTTP_INGRESS=process when the ingress process cannot be made (no process or file left): one plain
line naming the way out, exit 1, no traceback and nothing started."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import NoReturn

import pytest

from bridge import cli


def test_a_fork_refused_by_the_system_is_one_plain_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml here
    for key in list(os.environ):
        if key.startswith(("SLACK_", "LETTA_", "HTTP_", "DATABASE_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test-token")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "e2e-signing-secret-0123456789abcdef")
    monkeypatch.setenv("LETTA_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'b.db'}")
    monkeypatch.setenv("HTTP_INGRESS", "process")

    def refused() -> NoReturn:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "fork", refused)
    monkeypatch.setattr(cli, "setup_logging", lambda *_: None)  # the worker's logging stays pytest's
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the ingress's socket folder is made
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: cannot start the ingress process ({os.strerror(errno.EAGAIN)}); free some, or set HTTP_INGRESS=thread"
    ], err
    assert not (tmp_path / "b.db").exists()
    assert list(temp.iterdir()) == []  # the socket's folder made for the child went too
