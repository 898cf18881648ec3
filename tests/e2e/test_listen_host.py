"""HOST, PORT and LOG_FORMAT as platforms have them set: `::` is every address, IPv4 too; a bad setting said in
JSON when the logs are."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import REPO, BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this host has no IPv6 loopback")
@pytest.mark.parametrize("inbox", ["true", "false"])
def test_host_set_to_the_ipv6_any_address_still_answers_over_ipv4(
    fresh: tuple[FakeSlack, FakeLetta, Path], inbox: str
) -> None:
    """HOST=:: is what a platform with IPv6 private networking (Fly.io's 6PN, Railway's) tells an app to listen
    on, meaning every address, as it does for Node or nginx. asyncio made it IPv6 only: the platform's public
    router, which connects over IPv4, found nothing listening and the app was down."""
    slack, letta, tmp = fresh
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", HTTP_EVENTS_INBOX=inbox)
    bridge = BridgeProcess(env, host="::").start(tmp / "bridge.log", wait=False)
    try:
        bridge.wait_healthy()  # over 127.0.0.1
        assert httpx.get(f"http://[::1]:{bridge.port}/healthz", timeout=5).status_code == 200
    finally:
        assert bridge.stop() == 0


def test_with_json_logs_a_serve_with_a_bad_setting_says_so_in_json_lines(tmp_path: Path) -> None:
    """A platform's PORT or a mistyped variable is refused before the settings exist; with LOG_FORMAT=json in the
    environment those lines, the ones a crash-looping deploy writes, must be JSON like the rest. Exit 2."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", LOG_FORMAT="json", PORT="abc")
    done = subprocess.run([sys.executable, "-m", "bridge", "serve"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line is JSON
    assert any(line["level"] == "error" and "PORT" in line["message"] for line in lines), lines
