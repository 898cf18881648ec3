"""docs/guarantees.md on real 0.11.7: a group send cut short by the turn's deadline runs on at Letta and lists no
run, so a group of another channel sharing a member must not ask her until she has answered it (the members'
histories say when). The fake LLM's call log says when each of her model calls began."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.slack import FakeSlack
from tests.real.conftest import Stage

SLOW = 8.0  # seconds alice's first model call takes, past the deadline
DEADLINE = 6


def test_a_group_sharing_a_member_waits_for_a_group_send_cut_short_on_real_0_11_7(
    stage: Stage, tmp_path: Path
) -> None:
    server = stage.servers["0.11.7"]
    tag = uuid.uuid4().hex[:6]
    alice, carol = server.setup.agent("alice"), server.setup.agent("carol")
    channels = {f"C{tag.upper()}A": [alice], f"C{tag.upper()}B": [alice, carol]}
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    env = base_env(slack.api_url, server.url, tmp_path / "bridge.db", LETTA_CONVERSATIONS="false",
                   LETTA_RECOVERY_WAIT_SECONDS="60", TURN_DEADLINE_SECONDS=str(DEADLINE))
    for channel, members in channels.items():
        slack.add_channel(channel, f"real-{channel.lower()}")
        group = server.setup.group(members, "round_robin", description=f"cut {tag} {len(members)}")
        connected = run_cli(env, "channels", "connect", channel, group)
        assert connected.returncode == 0, connected.stdout + connected.stderr
    first, second = channels
    bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
    try:
        long, short = f"long {tag} [slow {SLOW:g}]", f"next {tag}"
        cut, _ = bridge.mention(long, first)
        slack.wait_for(lambda: any(f"did not finish within {DEADLINE} seconds" in m.get("text", "")
                                   for m in slack.messages(first, str(cut["ts"]))), 60)
        asked, _ = bridge.mention(short, second)
        slack.wait_for(lambda: "white_check_mark" in slack.reactions(second, str(asked["ts"])), 90)

        def began(text: str) -> list[float]:
            return sorted(c["at"] for c in stage.llm.calls if c["name"] == "alice" and text in c["user"])

        assert began(short) and began(long), stage.llm.calls[-10:]
        assert began(short)[0] >= began(long)[0] + SLOW, "alice was asked while the send cut short still ran"
        assert server.setup.user_messages_with(alice, long) == 1
        assert server.setup.user_messages_with(alice, short) == 1
        assert "a group send cut short may still run" in bridge.logs()
    finally:
        bridge.stop()
        slack.stop()
