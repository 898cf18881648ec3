"""config.example.toml: `letta_lookup_timeout`: "Seconds one-shot lookups (check, channels connect|list,
workspaces list, /letta status) wait for Letta's answer"; `letta_connect_timeout`: seconds to wait for a
connection. Against a Letta that takes the connection and never answers (a load balancer in front of a hung
server), `check` and `channels connect` first wait LETTA_CONNECT_TIMEOUT for the answer to GET /app-server-info
(bridge/clients.py letta_kind: within=letta_connect_timeout, a total timeout), then the lookup timeout on top."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import base_env, run_cli
from tests.fakes.slack import FakeSlack


@pytest.fixture
def silent_letta() -> Iterator[str]:
    """Accepts every connection, reads, never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


@pytest.mark.parametrize("command", [("check",), ("channels", "connect", "C0LOOKUP1",
                                                  "agent-70e7c92d-3846-4bb6-a651-683a60ee2c8c")])
def test_a_letta_that_never_answers_is_said_within_the_lookup_timeout(
    silent_letta: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    with FakeSlack() as slack:
        env = base_env(slack.api_url, silent_letta, tmp_path / "b.db",
                       LETTA_LOOKUP_TIMEOUT="1", LETTA_CONNECT_TIMEOUT="20")
        started = time.monotonic()
        done = run_cli(env, *command, cwd=tmp_path)
        took = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert took < 8, f"took {took:.1f}s with LETTA_LOOKUP_TIMEOUT=1: {done.stdout + done.stderr}"
