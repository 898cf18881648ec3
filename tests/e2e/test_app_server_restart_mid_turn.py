"""The App Server restarted while alice's model call runs, mirrored from a real 0.34.12 run (the server killed
with SIGTERM and started again on its port 2 s later): the thread was told alice's answer may be lost and bob
answered. The killed server stored nothing of the cut turn and left no conversation stuck (docs/app-server.md):
a follow-up in the thread is answered by both, in the same conversations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_app_server import Rig, _rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path, LETTA_CONNECT_TIMEOUT="10")


def test_restart_mid_turn_as_the_real_server(rig: Rig) -> None:
    channel, ids = rig.bind(("alice", "slow:3"), ("bob", "ok"))
    root = rig.mention(channel, "hello")
    time.sleep(1.0)
    rig.app.restart(down=2.0)
    rig.done(channel, root, 30)
    assert rig.said(channel, root) == [
        ("", "The connection to the Letta server dropped while alice was answering; the answer may be lost. "
             "Ask again if nothing follows."),
        ("bob", "bob says hi"),
    ]
    first = {t.agent_id: t.conversation for t in rig.app.inputs}
    assert all(m.get("_cut") is None for m in rig.app.convs[first[ids["alice"]]].messages)  # nothing kept of it
    rig.app.modes[ids["alice"]] = "ok"
    rig.mention(channel, "again", thread_ts=root)
    rig.slack.wait_for(lambda: len(rig.said(channel, root)) >= 4, 30)
    assert rig.said(channel, root)[2:] == [("alice", "alice says hi"), ("bob", "bob says hi")]
    assert {t.agent_id: t.conversation for t in rig.app.inputs} == first  # the same conversations, none stuck
