"""The fork server that starts the suite's bridges (tests/e2e/forkserver.py) gives what a fresh `python -m bridge`
gives: the same output and exit status, the request's environment, folder and file limit, and a process that
signals reach."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e import harness
from tests.e2e.harness import BridgeProcess, base_env, run_cli

NOWHERE = ("http://127.0.0.1:9/api/", "http://127.0.0.1:9")


def fresh_cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str, cwd: Path
              ) -> subprocess.CompletedProcess[str]:
    with monkeypatch.context() as patched:
        patched.setattr(harness, "fork_server", lambda: None)
        return run_cli(env, *args, cwd=cwd)


@pytest.mark.parametrize(
    "args",
    [("--version",), ("channels",), ("channels", "list"), ("check",), ("channels", "connect", "nope", "group-x")],
)
def test_a_forked_command_says_and_exits_as_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    env = base_env(*NOWHERE, tmp_path / "bridge.db", LETTA_CONNECT_TIMEOUT="1")
    forked, alone = run_cli(env, *args, cwd=tmp_path), fresh_cli(monkeypatch, env, *args, cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (alone.returncode, alone.stdout, alone.stderr)
    assert forked.stdout or forked.stderr


def test_settings_come_from_the_requests_environment_and_folder(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('database_url = "sqlite:///from-the-folder.db"\n')
    env = base_env(*NOWHERE, tmp_path / "bridge.db", SLACK_BOT_TOKEN="xoxb-from-the-request")
    del env["DATABASE_URL"]
    done = run_cli(env, "channels", "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "from-the-folder.db") in done.stdout


def test_a_served_bridge_has_its_file_limit_stops_on_sigterm_and_dies_on_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = base_env(*NOWHERE, tmp_path / "bridge.db")
    logged = []
    for fork in (True, False):
        with monkeypatch.context() as patched:
            if not fork:
                patched.setattr(harness, "fork_server", lambda: None)
            bridge = BridgeProcess(env, open_files=200).start(tmp_path / f"fork-{fork}.log")
            assert bridge.stop() == 0
        assert "bridge stopped" in bridge.logs()
        logged.append(re.findall(r"max_connections=\d+", bridge.logs()))
    assert logged[0] == logged[1] != []
    bridge = BridgeProcess(env).start(tmp_path / "killed.log")
    bridge.kill()
    assert bridge.proc is not None and bridge.proc.returncode == -signal.SIGKILL
