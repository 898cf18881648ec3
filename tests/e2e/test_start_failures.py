"""`serve` that cannot start says why in one plain line on stderr and exits at once; a normal start is quiet."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, BridgeProcess, base_env, started_with
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body
from tests.fakes.slack import FakeSlack


def serve_until_exit(
    env: dict[str, str], cwd: Path, mode: str = "serve", timeout: float = 20.0
) -> tuple[int, str, str, float]:
    """`python -m bridge serve` (or `socket`); (exit code, stdout, stderr, seconds taken). A process still running
    after `timeout` seconds is killed and fails the test."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", mode], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"serve was still running after {timeout}s:\n{err}") from None
    return proc.returncode, out, err, time.monotonic() - started


def one_error_line(stderr: str) -> str:
    """The one line a failed start prints: no traceback, no leftover session or thread complaining on exit."""
    assert "Traceback" not in stderr and "Unclosed" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("ingress", ["thread", "process"])
def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_1_at_once(tmp_path: Path, ingress: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", HOST="127.0.0.1",
                       PORT=str(port), HTTP_INGRESS=ingress)
        code, _, err, took = serve_until_exit(env, tmp_path)
    assert code == 1, err
    assert took < 10, f"took {took:.1f}s to exit"
    line = one_error_line(err)
    assert f"127.0.0.1:{port}" in line and "already in use" in line and "PORT" in line
    assert started_with(str(tmp_path)) == []  # with HTTP_INGRESS=process, its ingress process ended too


def test_serve_with_an_unreachable_database_says_so_in_one_line_and_exits_1_at_once(tmp_path: Path) -> None:
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", HOST="127.0.0.1",
                   PORT="0", DATABASE_URL="postgres://bridge:pw@127.0.0.1:9/bridge")
    code, _, err, took = serve_until_exit(env, tmp_path)
    assert code == 1, err
    assert took < 10, f"took {took:.1f}s to exit"
    assert one_error_line(err).startswith("error: cannot open the database postgres://***@127.0.0.1:9/bridge")


def test_socket_mode_with_a_refused_app_token_says_so_in_one_line_and_exits_1(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        env = base_env(slack.api_url, "http://127.0.0.1:9", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-revoked")
        code, _, err, took = serve_until_exit(env, tmp_path, mode="socket")
    assert code == 1 and took < 10, err
    line = one_error_line(err)
    assert line.startswith("error: Slack refused SLACK_APP_TOKEN (invalid_auth)") and "App-Level Tokens" in line


def test_socket_mode_that_slack_fails_on_its_side_is_not_blamed_on_the_token(tmp_path: Path) -> None:
    """apps.connections.open answering internal_error (a failure on Slack's side, in its documented errors) says
    so: not "Slack refused SLACK_APP_TOKEN... copy the current token", which sends the user after a good token."""
    with FakeSlack() as slack:
        slack.fail_next("apps.connections.open", "internal_error")
        env = base_env(slack.api_url, "http://127.0.0.1:9", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-test-token")
        code, _, err, took = serve_until_exit(env, tmp_path, mode="socket")
    assert code == 1 and took < 10, err
    line = one_error_line(err)
    assert "internal_error" in line and "Slack's side" in line and "try again" in line, line
    assert "refused" not in line and "Copy the current token" not in line, line


def test_socket_mode_rate_limited_at_start_waits_as_slack_asks_then_connects(tmp_path: Path) -> None:
    """apps.connections.open is a Tier 1 method: a bridge started again and again may be told to wait (429,
    Retry-After). It waits, says so, and connects, instead of telling the user their token is wrong."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        slack.fail_next("apps.connections.open", "ratelimited", headers={"Retry-After": "1"})
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_APP_TOKEN="xapp-test-token")
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            logs = bridge.logs()
        finally:
            assert bridge.stop() == 0
    assert "rate limit" in logs and "waiting 1 s" in logs, logs
    assert "refused" not in logs and "Traceback" not in logs, logs


def test_socket_mode_that_cannot_open_its_websocket_says_so_in_one_line_and_exits_1(tmp_path: Path) -> None:
    """Slack's Web API answers but its WebSocket host cannot be reached (a proxy or firewall that lets slack.com
    through, not WebSockets): one line naming the host, not a traceback every few seconds from a process that
    never starts and never ends."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # a port nobody listens on
        port = holder.getsockname()[1]
        with FakeSlack() as slack:
            slack.socket_url = f"ws://127.0.0.1:{port}/link/?ticket=secret-ticket&app_id={slack.app_id}"
            env = base_env(slack.api_url, "http://127.0.0.1:9", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-test-token")
            code, _, err, took = serve_until_exit(env, tmp_path, mode="socket")
    assert code == 1 and took < 10, err
    line = one_error_line(err)
    assert "Socket Mode" in line and f"127.0.0.1:{port}" in line and "proxy or firewall" in line, line
    assert "secret-ticket" not in line, "the connection's one-time ticket is not shown"


def test_socket_mode_whose_websocket_host_never_answers_says_so_within_a_minute(tmp_path: Path) -> None:
    """Slack's Web API answers, but the WebSocket host takes the TCP connection and never answers the upgrade (a
    middlebox that swallows WebSocket traffic): `socket` printed nothing at all for 300 s (aiohttp's default
    total timeout), then "no answer in time". Now one line after the handshake's bound (30 s)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        port = silent.getsockname()[1]
        with FakeSlack() as slack:
            slack.socket_url = f"ws://127.0.0.1:{port}/link/?ticket=silent-ticket"
            env = base_env(slack.api_url, "http://127.0.0.1:9", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-test-token")
            code, _, err, _ = serve_until_exit(env, tmp_path, mode="socket", timeout=60)
    assert code == 1, err
    line = one_error_line(err)
    assert f"Socket Mode connection to 127.0.0.1:{port}: no answer within 30 s" in line, line
    assert "proxy or firewall" in line and "silent-ticket" not in line, line


def test_socket_and_check_with_a_slack_api_url_carrying_a_password_say_so_in_one_line_without_it(
    tmp_path: Path,
) -> None:
    """SLACK_API_URL=http://user:password@host/api/ passed the settings' checks, then aiohttp refused every request
    carrying both the token's Authorization header and the URL's credentials: `socket` and `check` ended in a
    traceback."""
    with FakeSlack() as slack:
        url = slack.api_url.replace("http://", "http://slackuser:Sup3rS3cretPw@")
        env = base_env(url, "http://127.0.0.1:9", tmp_path / "b.db", SLACK_APP_TOKEN="xapp-test-token")
        checked = subprocess.run([sys.executable, "-m", "bridge", "check"], env=env, cwd=REPO, capture_output=True,
                                 text=True, timeout=60)
        code, _, err, _ = serve_until_exit(env, tmp_path, mode="socket")
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stderr
    assert "Sup3rS3cretPw" not in checked.stderr + checked.stdout, checked.stderr
    assert code == 2, err
    line = one_error_line(err)
    assert "SLACK_API_URL" in line and "carries a user and password" in line and "Sup3rS3cretPw" not in line, line


def test_a_normal_start_logs_no_warning_from_bolt(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp_path / "b.db"), cwd=REPO)
        bridge.start(tmp_path / "bridge.log")
        try:
            logs = bridge.logs()
        finally:
            assert bridge.stop() == 0
    assert "bridge listening" in logs
    assert "WARNING" not in logs and "will be unused" not in logs, logs


def test_single_workspace_mode_says_plainly_when_the_app_is_uninstalled_or_its_token_revoked(tmp_path: Path) -> None:
    """The manifest subscribes to app_uninstalled and tokens_revoked (OAuth mode acts on them); a single-workspace
    bridge acknowledges them and tells the operator what to do, instead of a 404 that Slack would retry."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp_path / "b.db")).start(tmp_path / "b.log")
        try:
            gone = bridge.post(event_body({"type": "app_uninstalled", "event_ts": "1700000000.000100"}))
            revoked = bridge.post(
                event_body({"type": "tokens_revoked", "tokens": {"bot": ["U0BOTABCD"]}, "event_ts": "1700000001.1"})
            )
            assert gone.status_code == 200 and revoked.status_code == 200
            deadline = time.monotonic() + 5
            while bridge.logs().count("SLACK_BOT_TOKEN no longer works") < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert bridge.logs().count("SLACK_BOT_TOKEN no longer works") == 2, bridge.logs()
            assert "uninstalled from workspace T0123ABCD" in bridge.logs()
        finally:
            bridge.stop()


def test_serve_with_a_bot_token_slack_refuses_says_so_plainly_at_start(tmp_path: Path) -> None:
    """A mistyped SLACK_BOT_TOKEN started a bridge that listened as if all were well: the first mention, taken
    and never answered, left only Bolt's "Failed to authorize with the given token" in the log. The start now says
    it in the operator's words, and still serves (a token renewed in Slack, or Slack's trouble, is not a reason to
    stop taking events)."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", SLACK_BOT_TOKEN="xoxb-mistyped")
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            deadline = time.monotonic() + 5
            while "Slack refused SLACK_BOT_TOKEN" not in bridge.logs() and time.monotonic() < deadline:
                time.sleep(0.05)
            [line] = [line for line in bridge.logs().splitlines() if "Slack refused SLACK_BOT_TOKEN" in line]
            assert " ERROR " in line and "(invalid_auth)" in line and "python -m bridge check" in line, line
            assert "xoxb-mistyped" not in bridge.logs()
        finally:
            assert bridge.stop() == 0


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process may not create files in: a read-only one, or /proc where permissions do not bind
    (root)."""
    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def test_serve_with_a_database_folder_it_cannot_write_says_so_in_one_line(tmp_path: Path) -> None:
    folder = unwritable_folder(tmp_path)
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", folder / "b.db", HOST="127.0.0.1", PORT="0")
    code, _, err, _ = serve_until_exit(env, tmp_path)
    assert code == 1, err
    line = one_error_line(err)
    assert f"cannot create the database's file b.db.lock in {folder}" in line and "DATABASE_URL" in line, line
