"""The App Server socket's reconnect log says when it really tries again: every backoff_base while a turn waits."""

from __future__ import annotations

import asyncio
import logging
import re
import socket

import pytest

from bridge.letta.appserver.socket import AppServerSocket
from bridge.letta.errors import LettaError


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_the_reconnect_log_says_when_it_tries_again(caplog: pytest.LogCaptureFixture) -> None:
    """While a turn waits, the socket tries every backoff_base (0.5 s), yet each try logs 'again in <the grown
    backoff> s' (up to 30 s): an operator reads that the bridge waits half a minute while it tries twice a second."""

    caplog.set_level(logging.WARNING, logger="bridge.letta.appserver.socket")

    async def main() -> None:
        ws = AppServerSocket(f"ws://127.0.0.1:{_closed_port()}/ws", connect_timeout=4.0, backoff_base=0.5)
        try:
            await ws.send({"type": "ping"})
        except LettaError:
            pass
        finally:
            await ws.close()

    asyncio.run(main())
    said = [float(m) for r in caplog.records for m in re.findall(r"again in ([0-9.]+) s", r.getMessage())]
    assert said and len(said) >= 5
    assert max(said) <= 1.0, said
