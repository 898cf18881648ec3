"""docs/guarantees.md on real 0.11.7: a group send cut short (by the turn's deadline, or by kill -9 and a restart)
runs on at Letta and lists no run, so a group of another channel sharing a member must not ask her until she has
answered it (the members' histories say when). The fake LLM's call log says when each of her model calls began."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.slack import FakeSlack
from tests.real.conftest import Server, Stage

SLOW = 8.0  # seconds alice's first model call takes
DEADLINE = 6


@dataclass
class Shared:
    server: Server
    slack: FakeSlack
    bridge: BridgeProcess
    alice: str
    first: str  # a channel bound to a group of alice
    second: str  # a channel bound to alice and carol
    tag: str


@contextmanager
def shared(stage: Stage, tmp: Path, **settings: str) -> Iterator[Shared]:
    server = stage.servers["0.11.7"]
    tag = uuid.uuid4().hex[:6]
    alice, carol = server.setup.agent("alice"), server.setup.agent("carol")
    channels = {f"C{tag.upper()}A": [alice], f"C{tag.upper()}B": [alice, carol]}
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    env = base_env(slack.api_url, server.url, tmp / "bridge.db", LETTA_CONVERSATIONS="false",
                   LETTA_RECOVERY_WAIT_SECONDS="60", **settings)
    for channel, members in channels.items():
        slack.add_channel(channel, f"real-{channel.lower()}")
        group = server.setup.group(members, "round_robin", description=f"cut {tag} {len(members)}")
        connected = run_cli(env, "channels", "connect", channel, group)
        assert connected.returncode == 0, connected.stdout + connected.stderr
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        yield Shared(server, slack, bridge, alice, *channels, tag)
    finally:
        bridge.stop()
        slack.stop()


def began(stage: Stage, text: str) -> list[float]:
    return sorted(c["at"] for c in stage.llm.calls if c["name"] == "alice" and text in c["user"])


@pytest.mark.parametrize("cut", ["deadline", "kill -9"])
def test_a_group_sharing_a_member_waits_for_a_group_send_cut_short_on_real_0_11_7(
    stage: Stage, tmp_path: Path, cut: str
) -> None:
    settings = {"TURN_DEADLINE_SECONDS": str(DEADLINE)} if cut == "deadline" else {}
    with shared(stage, tmp_path, **settings) as s:
        long, short = f"long {s.tag} [slow {SLOW:g}]", f"next {s.tag}"
        first, _ = s.bridge.mention(long, s.first)
        if cut == "deadline":
            s.slack.wait_for(lambda: any(f"did not finish within {DEADLINE} seconds" in m.get("text", "")
                                         for m in s.slack.messages(s.first, str(first["ts"]))), 60)
        else:
            s.slack.wait_for(lambda: bool(began(stage, long)), 60)
            s.bridge.kill()
            s.bridge.restart()
        asked, _ = s.bridge.mention(short, s.second)
        s.slack.wait_for(lambda: "white_check_mark" in s.slack.reactions(s.second, str(asked["ts"])), 90)
        assert began(stage, short) and began(stage, long), stage.llm.calls[-10:]
        assert began(stage, short)[0] >= began(stage, long)[0] + SLOW, "alice asked while the send cut short ran"
        assert s.server.setup.user_messages_with(s.alice, long) == 1
        assert s.server.setup.user_messages_with(s.alice, short) == 1
        assert "cut short may still run" in s.bridge.logs()
