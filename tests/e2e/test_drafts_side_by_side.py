"""Two drafts growing at once (a broadcast, token streaming): the one whose edit waited for the other's (one edit
of the workspace's at a time) started its whole interval over, stayed in step with the other, and kept losing to
it: bob's draft showed its first word for nine seconds, then the whole reply (revT). Both grow."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import World, new_channel, open_world
from tests.e2e.test_live_replies import calls, wait_done

WORDS = " ".join(f"word{i}" for i in range(60))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[World]:
    with open_world("bridge", tmp_path, LETTA_STREAM_TOKENS="true") as world:  # SLACK_LIVE_EDIT_SECONDS 1.5
        yield world


def test_both_drafts_of_a_broadcast_grow(live: World) -> None:
    alice, bob, channel = live.letta.add_agent("alice"), live.letta.add_agent("bob"), new_channel()
    live.slack.add_channel(channel, f"chan-{channel.lower()}")
    live.connect(channel, alice, bob, "--broadcast")
    live.letta.set_reply(alice, "A " + WORDS)
    live.letta.set_reply(bob, "B " + WORDS)
    live.letta.token_delay = 0.15  # about nine seconds of writing each
    event, _ = live.bridge.mention("go", channel)
    wait_done(live, channel, event["ts"], 40)
    started = {c.response["ts"]: c.args["username"] for c in calls(live, "chat.startStream", channel)}
    grown = Counter(started[c.args["ts"]] for c in calls(live, "chat.appendStream", channel))
    assert grown["alice"] >= 2 and grown["bob"] >= 2, grown
