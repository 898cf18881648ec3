"""docs/operations.md: a request refused at the door (malformed: a scanner) is said once a minute per reason. Found by
a review (revAW): a request whose head aiohttp cannot parse (a header line over 8,190 bytes, a header without a colon,
a Content-Length that is not a number) was logged at ERROR with a whole traceback, every time."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

MALFORMED = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
]


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        return s.recv(100)


@pytest.mark.parametrize("inbox", ["true", "false"])
def test_malformed_request_heads_are_refused_quietly(fresh: tuple[FakeSlack, FakeLetta, Path], inbox: str) -> None:
    slack, letta, tmp = fresh
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", HTTP_EVENTS_INBOX=inbox)
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        for _ in range(5):
            for raw in MALFORMED:
                assert _send(bridge.port, raw).startswith(b"HTTP/1.0 400"), raw[:40]
        time.sleep(0.5)
        logs = bridge.logs()
        assert "Traceback" not in logs, logs[-3000:]
        assert logs.count("ERROR") == 0, logs[-3000:]
        refused = [line for line in logs.splitlines() if "http request refused status=400 reason=malformed" in line]
        kinds = {line.rsplit("(", 1)[1] for line in refused}  # LineTooLong, BadHttpMessage (no colon, a bad length)
        assert len(refused) == len(kinds) >= 2, refused  # a line per kind, though each request came five times
    finally:
        assert bridge.stop() == 0
