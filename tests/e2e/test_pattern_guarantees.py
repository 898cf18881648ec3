"""kill -9 in the middle of a supervisor or dynamic turn, on both runners: after a restart nothing is lost and no
agent runs twice (every Letta send of a pattern is journaled and looked up by otid before it is made again)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.slow  # soak, kill -9 or several processes: .ci/run's slow stage


@dataclass
class Crew:
    slack: FakeSlack
    letta: FakeLetta
    bridge: BridgeProcess
    agents: dict[str, str]
    channel: str = "C0PATT001"

    def turns_of(self, name: str) -> int:
        return sum(1 for i in self.letta.inputs if i.agent_id == self.agents[name])

    def replies(self, ts: str) -> list[str]:
        return [p.args["username"] for p in self.slack.posts(self.channel, ts) if p.args.get("username")]


@pytest.fixture(params=["0.11.7", "0.16.8"], ids=["server-runner", "bridge-runner"])
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def crew(tmp_path: Path, version: str, manager_type: str, **group: object) -> Iterator[Crew]:
    slack, letta = FakeSlack(), FakeLetta(version=version)
    slack.start(), letta.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    agents = {n: letta.add_agent(n) for n in ("alice", "bob", "carol", "boss")}
    workers = [agents[n] for n in ("alice", "bob", "carol")]
    group_id = letta.add_group(workers, manager_type=manager_type, manager_agent_id=agents["boss"], **group)  # type: ignore[arg-type]
    settings = base_env(slack.api_url, letta.base_url, tmp_path / "bridge.db")
    assert run_cli(settings, "channels", "connect", "C0PATT001", group_id).returncode == 0
    bridge = BridgeProcess(settings).start(tmp_path / "bridge.log")
    try:
        yield Crew(slack, letta, bridge, agents)
    finally:
        bridge.stop(), letta.stop(), slack.stop()


def test_kill_9_while_a_supervisors_worker_thinks(tmp_path: Path, version: str) -> None:
    for c in crew(tmp_path, version, "supervisor"):
        c.letta.set_delay(c.agents["bob"], 1.5)
        event, _ = c.bridge.mention("report in", c.channel)
        c.letta.wait_for(lambda: any(i.agent_name == "bob" for i in c.letta.inputs), 10)
        c.bridge.kill()
        c.letta.wait_for(lambda: all(i.finished for i in c.letta.inputs), 10)
        c.bridge.restart()
        c.slack.wait_for(lambda: len(c.replies(event["ts"])) == 4, 20)
        time.sleep(0.5)
        assert [c.turns_of(n) for n in ("alice", "bob", "carol", "boss")] == [1, 1, 1, 1]
        assert sorted(c.replies(event["ts"])[:3]) == ["alice", "bob", "carol"]
        assert c.replies(event["ts"])[3] == "boss"


def test_kill_9_while_a_dynamic_speaker_thinks(tmp_path: Path, version: str) -> None:
    for c in crew(tmp_path, version, "dynamic", max_turns=2):
        c.letta.set_reply(c.agents["boss"], lambda text: "carol" if "bob" in text.split("Members:")[0] else "bob")
        c.letta.set_delay(c.agents["bob"], 1.5)
        event, _ = c.bridge.mention("who knows", c.channel)
        c.letta.wait_for(lambda: any(i.agent_name == "bob" for i in c.letta.inputs), 10)
        c.bridge.kill()
        c.letta.wait_for(lambda: all(i.finished for i in c.letta.inputs), 10)
        c.bridge.restart()
        c.slack.wait_for(lambda: len(c.replies(event["ts"])) == 2, 20)
        time.sleep(0.5)
        assert c.replies(event["ts"]) == ["bob", "carol"]
        assert [c.turns_of(n) for n in ("alice", "bob", "carol")] == [0, 1, 1]
        assert c.turns_of("boss") == 2
