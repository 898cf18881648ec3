"""A mention sent while the App Server restarts: a real 0.34.12 refuses connections for about 3-13 s then. The
bridge's reconnect backoff had grown by the time the mention came, and the mention waited LETTA_CONNECT_TIMEOUT
for one try that still met the closed port, then for a grown backoff: "I couldn't reach the Letta server" although
the server was back well within that time. While a mention waits for the socket, the bridge now tries every
backoff_base."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_app_server import Rig, _rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, LETTA_CONNECT_TIMEOUT="3")


def test_a_mention_sent_while_the_server_restarts_is_answered_once_it_is_back(rig: Rig) -> None:
    channel, _ = rig.bind(("alice", "ok"))
    first = rig.mention(channel, "before the restart")
    assert rig.done(channel, first) == {"white_check_mark"}  # the bridge's socket is open

    rig.app.restart(down=6.0)  # the port refuses connections for 6 s; the backoff grows meanwhile
    time.sleep(5.0)
    root = rig.mention(channel, "during the restart")  # back 1 s into the mention's 3 s wait
    assert rig.done(channel, root) == {"white_check_mark"}, rig.said(channel, root)
    assert rig.said(channel, root) == [("alice", "alice says hi")]
