"""HOST as platforms have it set: `::` is every address, IPv4 too."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import BridgeProcess, base_env
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
