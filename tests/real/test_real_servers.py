"""The bridge as a user runs it (`python -m bridge ...`), against real Letta servers and the fake Slack: `check`, a
mention on each runner and group pattern, threads as conversations, token streaming, and kill -9 in the middle of a
turn on each runner, after which each agent's real history must hold the mention's user message exactly once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.slack import FakeSlack
from tests.real.conftest import Server, Stage

NAMES = ("alice", "bob", "carol")


@dataclass
class Bound:
    server: Server
    slack: FakeSlack
    bridge: BridgeProcess
    channel: str
    agents: dict[str, str]
    speakers: list[str]  # who posts in the thread, in order

    def mention(self, text: str) -> str:
        event, response = self.bridge.mention(text, self.channel)
        assert response.status_code == 200
        return str(event["ts"])

    def said(self, ts: str) -> list[tuple[str, str]]:
        """(agent, text) of each agent message in the thread as it stands (a draft written over counts once)."""
        return [(m.get("username", ""), m.get("text", "")) for m in self.slack.messages(self.channel, ts)
                if m.get("bot_id") and m["ts"] != ts and m.get("username")]

    def names(self, ts: str) -> list[str]:
        return [name for name, _ in self.said(ts)]

    def server_failed(self) -> set[str]:
        """Agents whose run the real server itself failed (`kind=run_failed` in the bridge's log; seen once on a
        loaded CI machine, 0.16.8 failing one of three concurrent runs after 30 s). The bridge then says so in the
        thread and never asks again: such an agent is left out of who must have spoken, not of the once-only
        counts."""
        ids = {v: k for k, v in self.agents.items()}
        return {ids[w.split("=", 1)[1]] for line in self.bridge.logs().splitlines()
                if "agent failed" in line and "kind=run_failed" in line
                for w in line.split() if w.startswith("agent=") and w.split("=", 1)[1] in ids}

    def wait_replies(self, ts: str, timeout: float = 120) -> list[str]:
        """Wait for the turn's end (its ✅ or ⚠️), then the agents who spoke, in order."""
        done = {"white_check_mark", "warning"}
        self.slack.wait_for(lambda: bool(self.slack.reactions(self.channel, ts) & done), timeout)
        return self.names(ts)

    def counts(self, text: str) -> list[int]:
        return [self.server.setup.user_messages_with(self.agents[n], text) for n in self.speakers if n in self.agents]


@contextmanager
def bound(stage: Stage, kind: str, tmp: Path, pattern: str = "round_robin", runner: str = "auto",
          **settings: str) -> Iterator[Bound]:
    server = stage.servers[kind]
    tag = uuid.uuid4().hex[:6]
    agents = {n: server.setup.agent(f"{n}") for n in NAMES}
    members = list(agents.values())
    speakers = list(NAMES)
    if pattern == "round_robin":
        target = server.setup.group(members, "round_robin", description=f"crew {tag}")
    else:
        manager = server.setup.agent("boss")
        agents["boss"] = manager
        extra = {"termination_token": "DONE!", "max_turns": 3} if pattern == "dynamic" else {}
        target = server.setup.group(members, pattern, manager, description=f"{pattern} {tag}", **extra)
        speakers = [*NAMES, "boss"] if pattern == "supervisor" else ["alice"]
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    channel = f"C{tag.upper()}"
    slack.add_channel(channel, f"real-{tag}")
    env = base_env(slack.api_url, server.url, tmp / "bridge.db",
                   **{"LETTA_CONVERSATIONS": "false", "LETTA_RECOVERY_WAIT_SECONDS": "60", **settings})
    args = ["channels", "connect", channel, target] + ([] if runner == "auto" else ["--runner", runner])
    connected = run_cli(env, *args)
    assert connected.returncode == 0, connected.stdout + connected.stderr
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        yield Bound(server, slack, bridge, channel, agents, speakers)
    finally:
        bridge.stop()
        slack.stop()


@pytest.mark.parametrize("kind", ["0.11.7", "0.16.8", "0.16.8+redis"])
def test_check_passes_against_the_real_server(stage: Stage, kind: str, tmp_path: Path) -> None:
    slack = FakeSlack()
    slack.start()
    try:
        env = base_env(slack.api_url, stage.servers[kind].url, tmp_path / "bridge.db")
        done = run_cli(env, "check")
        assert done.returncode == 0, done.stdout + done.stderr
        assert stage.servers[kind].version in done.stdout
    finally:
        slack.stop()


MENTIONS = [
    ("0.11.7", "round_robin", "server", {}),
    ("0.11.7", "supervisor", "server", {}),
    ("0.11.7", "dynamic", "server", {}),
    ("0.11.7", "round_robin", "bridge", {}),
    ("0.16.8", "round_robin", "bridge", {}),
    ("0.16.8", "supervisor", "bridge", {}),
    ("0.16.8", "dynamic", "bridge", {}),
    ("0.16.8", "round_robin", "bridge", {"LETTA_CONVERSATIONS": "true"}),
    ("0.16.8", "round_robin", "bridge", {"LETTA_STREAM_TOKENS": "true"}),
    ("0.16.8+redis", "round_robin", "bridge", {}),
    ("0.16.8+redis", "round_robin", "bridge", {"LETTA_CONVERSATIONS": "true", "LETTA_STREAM_TOKENS": "true"}),
]


@pytest.mark.parametrize(("kind", "pattern", "runner", "settings"), MENTIONS,
                         ids=[f"{k}-{p}-{r}" + ("-" + "-".join(sorted(s)).lower() if s else "")
                              for k, p, r, s in MENTIONS])
def test_a_mention_is_answered_by_each_agent_once(stage: Stage, kind: str, pattern: str, runner: str,
                                                  settings: dict[str, str], tmp_path: Path) -> None:
    with bound(stage, kind, tmp_path, pattern, runner, **settings) as b:
        text = f"hello {uuid.uuid4().hex[:8]}"
        ts = b.mention(text)
        said = b.wait_replies(ts)
        failed = b.server_failed()
        if failed:
            print(f"{kind} {pattern} {runner}: the real server failed the runs of {sorted(failed)}")
            b.speakers = [n for n in b.speakers if n not in failed]
        if pattern == "dynamic" and runner == "server":  # 0.11.7 asks the chosen member up to max_turns times
            assert set(said) == {"alice"}
        elif pattern == "supervisor" and runner == "bridge":  # the bridge asks a supervisor's workers at once
            assert sorted(said) == sorted(b.speakers)
        else:
            assert said == b.speakers
        assert all(t == f"{n} says hi" for n, t in b.said(ts)), b.said(ts)
        if pattern != "supervisor" or runner == "bridge":
            asked = [n for n in NAMES if n in b.speakers]
            assert [b.server.setup.user_messages_with(b.agents[n], text) for n in asked] == [1] * len(asked)
        for name in failed:  # a failed run may or may not have stored its message, but never twice
            assert b.server.setup.user_messages_with(b.agents[name], text) <= 1


def test_a_supervisor_with_the_bridge_runner_is_refused_on_0_11(stage: Stage, tmp_path: Path) -> None:
    server = stage.servers["0.11.7"]
    workers = [server.setup.agent(n) for n in NAMES]
    group = server.setup.group(workers, "supervisor", server.setup.agent("boss"))
    slack = FakeSlack()
    slack.start()
    try:
        env = base_env(slack.api_url, server.url, tmp_path / "bridge.db")
        done = run_cli(env, "channels", "connect", "C0REFUSED", group, "--runner", "bridge")
        assert done.returncode != 0
        assert "always runs on the server" in done.stdout + done.stderr
    finally:
        slack.stop()


KILLS = [
    ("0.16.8", "bridge", {"LETTA_CONVERSATIONS": "true"}),  # threads as conversations
    ("0.16.8", "bridge", {}),  # agent-direct: the default thread, unlocked without Redis
    ("0.16.8+redis", "bridge", {}),  # background runs, re-attached by otid
    ("0.16.8+redis", "bridge", {"LETTA_CONVERSATIONS": "true"}),
    ("0.11.7", "server", {}),  # the group route, which lists no run
    ("0.11.7", "bridge", {}),
]


@pytest.mark.parametrize(("kind", "runner", "settings"), KILLS,
                         ids=[f"{k}-{r}" + ("-threads" if s else "") for k, r, s in KILLS])
def test_kill_9_mid_turn_leaves_exactly_one_user_message_per_agent(stage: Stage, kind: str, runner: str,
                                                                   settings: dict[str, str], tmp_path: Path) -> None:
    with bound(stage, kind, tmp_path, "round_robin", runner, **settings) as b:
        text = f"survive {uuid.uuid4().hex[:8]} [slow 6]"
        ts = b.mention(text)
        deadline = time.monotonic() + 60
        while not any(text in c["user"] for c in stage.llm.calls):
            assert time.monotonic() < deadline, "the first agent was never asked"
            time.sleep(0.1)
        time.sleep(2)  # three seconds into a six-second LLM call, give or take
        b.bridge.kill()
        b.bridge.restart()
        said = b.wait_replies(ts, 180)
        counts = b.counts(text)
        print(f"kill -9 {kind} {runner} {settings}: user messages per agent {counts}, posted {said}")
        assert counts == [1, 1, 1]
        assert said == list(NAMES)


def test_an_image_shared_with_a_mention_reaches_each_agent_on_real_0_16_8(stage: Stage, tmp_path: Path) -> None:
    """docs/files.md on a real server: each agent's real history holds the mention with the image part after it
    (stored as `source.type: letta`, reference/letta/README.md §18)."""
    import base64

    from tests.fakes.signing import event_body, mention_event

    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
    with bound(stage, "0.16.8", tmp_path) as b:
        event = mention_event("what is in this picture?", channel=b.channel)
        event["files"] = [b.slack.add_file("dot.png", base64.b64decode(png), "image/png")]
        assert b.bridge.post(event_body(event)).status_code == 200
        assert b.wait_replies(str(event["ts"])) == list(NAMES)
        for name in NAMES:
            [sent] = [m for m in b.server.setup.history(b.agents[name]) if m.get("message_type") == "user_message"
                      and "what is in this picture?" in str(m.get("content"))]
            images = [p for p in sent["content"] if isinstance(p, dict) and p.get("type") == "image"]
            assert len(images) == 1 and images[0]["source"]["data"] == png, sent["content"]
