"""A channel held by its first turn (its agent slow to answer) while a burst of mentions queues behind it: the
setting of the tests of queue notices still due (posted about one a second per channel)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack


@dataclass
class Held:
    slack: FakeSlack
    letta: FakeLetta
    bridge: BridgeProcess
    channel: str

    def burst(self, count: int) -> list[dict[str, Any]]:
        """`count` top-level mentions, the first of which is running once this returns."""
        mentions = [self.bridge.mention(f"question {n}", self.channel)[0] for n in range(count)]
        self.letta.wait_for(lambda: len(self.letta.inputs) == 1, 10)
        return mentions

    def told(self) -> set[str]:
        """The threads a queue notice was posted in."""
        posts = self.slack.posts(self.channel)
        return {str(p.args["thread_ts"]) for p in posts if p.args["text"].startswith("Queued")}


@contextmanager
def held_channel(tmp_path: Path, channel: str, hold_seconds: float, **env: str) -> Iterator[Held]:
    """A bridge with `channel` connected to one agent that takes `hold_seconds` to answer; stopped after."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        settings = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db", **env)
        alice = letta.add_agent("alice")
        letta.set_delay(alice, hold_seconds)
        slack.add_channel(channel, channel.lower())
        assert run_cli(settings, "channels", "connect", channel, alice).returncode == 0
        bridge = BridgeProcess(settings).start(tmp_path / "bridge.log")
        try:
            yield Held(slack, letta, bridge, channel)
        finally:
            bridge.stop()
