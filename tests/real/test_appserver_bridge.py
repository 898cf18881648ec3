"""The whole bridge (`python -m bridge serve`, fake Slack) against a real Letta App Server (PyPI letta==0.34.12)
driven by the stage's fake model (llm.py): a mention to a bridge-defined group of three agents in each pattern,
two threads at once, token streaming, a failing and a hanging model, and kill -9 mid-turn. Each flow is judged by
the agents' conversation histories on the server: who got the person's message, how many times.

The server is started by ../shared/tools/real-letta/letta-server.sh, with this process a child subreaper (the App
Server exits when its parent is gone; test_appserver_real.py says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from bridge.letta.appserver import AppServerClient
from bridge.letta.appserver.deltas import AssistantDelta, UserDelta
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.slack import FakeSlack
from tests.real.llm import MODEL, FakeLLM
from tests.real.test_appserver_real import app_server, make_agent

T = TypeVar("T")
NAMES = ("alice", "bob", "carol")
DONE = {"white_check_mark", "warning"}


@dataclass
class AppServer:
    url: str
    llm: FakeLLM

    def agents(self, *names: str) -> dict[str, str]:
        async def body(client: AppServerClient) -> dict[str, str]:
            return {name: await make_agent(client, name, MODEL) for name in names}

        return self._run(body)

    def said_to(self, agent: str, marker: str) -> list[tuple[str, list[str]]]:
        """Each user message in the agent's conversations that holds `marker`: its conversation, and the replies
        stored after it."""
        return [(conversation, replies) for conversation, _, replies in self.messages(agent, marker)]

    def messages(self, agent: str, marker: str) -> list[tuple[str, str | None, list[str]]]:
        """As `said_to`, with each user message's otid (the bridge's client_message_id)."""

        async def body(client: AppServerClient) -> list[tuple[str, str | None, list[str]]]:
            found: list[tuple[str, str | None, list[str]]] = []
            for conversation in await client.list_conversations(agent):
                messages: list[object] = []
                before: str | None = None
                while True:
                    page, before = await client.history(conversation.id, before=before)
                    messages = [*reversed(page), *messages]
                    if before is None or not page:
                        break
                for index, message in enumerate(messages):
                    if isinstance(message, UserDelta) and marker in message.text:
                        replies: list[str] = []
                        for later in messages[index + 1 :]:
                            if isinstance(later, UserDelta):
                                break
                            if isinstance(later, AssistantDelta):
                                replies.append(later.text)
                        found.append((conversation.id, message.otid, replies))
            return found

        return self._run(body)

    def _run(self, body: Callable[[AppServerClient], Awaitable[T]]) -> T:
        async def main() -> T:
            client = AppServerClient(self.url, request_timeout=60.0)
            try:
                return await body(client)
            finally:
                await client.aclose(wait=5.0, force=True)

        return asyncio.run(main())


@pytest.fixture(scope="module")
def server() -> Iterator[AppServer]:
    llm = FakeLLM()
    llm_url = llm.start()
    try:
        with app_server(llm_url) as url:
            yield AppServer(url, llm)
    finally:
        with contextlib.suppress(TimeoutError):  # a "hanging" model call the server gave up on may still sleep
            llm.stop()


@dataclass
class Bound:
    server: AppServer
    slack: FakeSlack
    bridge: BridgeProcess
    channel: str
    agents: dict[str, str]
    db: Path

    def mention(self, text: str, thread_ts: str | None = None) -> str:
        extra = {"thread_ts": thread_ts} if thread_ts else {}
        event, response = self.bridge.mention(text, self.channel, **extra)
        assert response.status_code == 200
        return str(event["ts"])

    def wait(self, ts: str, timeout: float = 120) -> set[str]:
        self.slack.wait_for(lambda: bool(self.slack.reactions(self.channel, ts) & DONE), timeout)
        return self.slack.reactions(self.channel, ts)

    def said(self, ts: str) -> list[tuple[str, str]]:
        """(username, text) of each bot message in the thread as it stands now."""
        return [(m.get("username", ""), m.get("text", "")) for m in self.slack.messages(self.channel, ts)
                if m.get("bot_id") and m["ts"] != ts]

    def otid(self, ts: str) -> str:
        """The turn's otid, as the bridge recorded it (the client_message_id of its agents' first sends)."""
        with sqlite3.connect(self.db) as db:
            return str(db.execute("SELECT otid FROM turns WHERE message_ts=?", (ts,)).fetchone()[0])

    def counts(self, marker: str, *names: str) -> list[int]:
        return [len(self.server.said_to(self.agents[n], marker)) for n in names]


@contextmanager
def bound(server: AppServer, tmp: Path, options: tuple[str, ...] = (), manager: bool = False,
          names: tuple[str, ...] = NAMES, **settings: str) -> Iterator[Bound]:
    agents = server.agents(*names, *(("boss",) if manager else ()))
    slack = FakeSlack()
    slack.start()
    slack.add_user("U0123ABCD", "maria", display_name="maria")
    channel = f"C{uuid.uuid4().hex[:8].upper()}"
    slack.add_channel(channel, f"real-{channel.lower()}")
    env = base_env(slack.api_url, server.url, tmp / "bridge.db", **settings)
    extra = ("--manager", agents["boss"]) if manager else ()
    connected = run_cli(env, "channels", "connect", channel, *(agents[n] for n in names), *options, *extra)
    assert connected.returncode == 0, connected.stdout + connected.stderr
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        yield Bound(server, slack, bridge, channel, agents, tmp / "bridge.db")
    finally:
        bridge.stop()
        slack.stop()


def test_check_names_the_real_app_server(server: AppServer, tmp_path: Path) -> None:
    slack = FakeSlack()
    slack.start()
    try:
        done = run_cli(base_env(slack.api_url, server.url, tmp_path / "bridge.db"), "check")
        assert "ok   letta: Letta App Server reachable at" in done.stdout and "version 0.34.12" in done.stdout
    finally:
        slack.stop()


PATTERNS = {
    "in-order": ((), False),
    "supervisor": (("--pattern", "supervisor"), True),
    "dynamic": (("--pattern", "dynamic", "--termination-token", "DONE!"), True),
    "broadcast": (("--pattern", "broadcast"), False),
}


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_a_bridge_defined_group_of_three_answers_in_its_pattern(server: AppServer, pattern: str,
                                                                tmp_path: Path) -> None:
    options, manager = PATTERNS[pattern]
    with bound(server, tmp_path, options, manager) as b:
        marker = f"hello {uuid.uuid4().hex[:8]}"
        ts = b.mention(marker)
        assert b.wait(ts) == {"white_check_mark"}, b.said(ts)
        said = b.said(ts)
        assert all(text == f"{name} says hi" for name, text in said), said
        names = [name for name, _ in said]
        if pattern == "in-order":
            assert names == list(NAMES)
        elif pattern == "supervisor":  # the workers at once, then the manager with their replies
            assert sorted(names[:3]) == sorted(NAMES) and names[3] == "boss"
            [(_, replies)] = b.server.said_to(b.agents["boss"], "Your workers answered:")
            assert replies == ["boss says hi"]
        elif pattern == "dynamic":  # llm.py's manager names alice, then says DONE! once she has spoken
            assert names == ["alice"]
            assert b.counts(marker, "boss") == [2] and b.counts(marker, "bob", "carol") == [0, 0]
        else:
            assert sorted(names) == sorted(NAMES)
        spoke = [n for n in NAMES if n in names]
        assert b.counts(marker, *spoke) == [1] * len(spoke)  # each asked once, in its own conversation
        for name in spoke:
            [(conversation, replies)] = b.server.said_to(b.agents[name], marker)
            assert replies == [f"{name} says hi"] and conversation != "default"


def test_two_threads_run_at_once_each_in_its_own_conversations(server: AppServer, tmp_path: Path) -> None:
    with bound(server, tmp_path) as b:
        first, second = f"one {uuid.uuid4().hex[:8]} [slow 3]", f"two {uuid.uuid4().hex[:8]} [slow 3]"
        a, c = b.mention(first), b.mention(second)
        assert b.wait(a) == b.wait(c) == {"white_check_mark"}
        assert [n for n, _ in b.said(a)] == [n for n, _ in b.said(c)] == list(NAMES)
        calls = b.server.llm.calls
        starts = {text: [c["at"] for c in calls if text in c["user"]] for text in (first, second)}
        assert min(starts[second]) < max(starts[first]) and min(starts[first]) < max(starts[second])  # overlapped
        for name in NAMES:
            [(one, _)], [(two, _)] = b.server.said_to(b.agents[name], first), b.server.said_to(b.agents[name], second)
            assert one != two


def test_token_streaming_grows_drafts_and_leaves_the_full_replies(server: AppServer, tmp_path: Path) -> None:
    with bound(server, tmp_path, LETTA_STREAM_TOKENS="true") as b:
        marker = f"stream {uuid.uuid4().hex[:8]}"
        ts = b.mention(marker)
        assert b.wait(ts) == {"white_check_mark"}
        assert b.said(ts) == [(n, f"{n} says hi") for n in NAMES]
        assert b.slack.calls_to("chat.startStream") or b.slack.calls_to("chat.update")  # drafts were grown
        assert b.counts(marker, *NAMES) == [1, 1, 1]


def test_a_failing_model_is_said_in_plain_words_after_the_servers_retries(server: AppServer, tmp_path: Path) -> None:
    with bound(server, tmp_path, names=("erin",), TURN_DEADLINE_SECONDS="150") as b:
        marker = f"fail {uuid.uuid4().hex[:8]} [fail]"
        ts = b.mention(marker)
        assert b.wait(ts, 170) == {"warning"}
        [(_, text)] = b.said(ts)
        assert "the model provider failed" in text and "{" not in text, text
        # 0.34.12 retries a turn whose model failed (README §10) and stores the user's message again for each
        # retry, under an otid of its own: one send by the bridge (its otid once), several copies in one conversation.
        stored = b.server.messages(b.agents["erin"], marker)
        print(f"a failing model: the user's message stored {len(stored)} times: {stored}")
        assert [otid for _, otid, _ in stored].count(b.otid(ts)) == 1, (b.otid(ts), stored)
        assert len({conversation for conversation, _, _ in stored}) == 1
        assert all(replies == [] for _, _, replies in stored)


def test_a_hanging_model_meets_the_bridges_deadline(server: AppServer, tmp_path: Path) -> None:
    with bound(server, tmp_path, names=("hank",), TURN_DEADLINE_SECONDS="8") as b:
        marker = f"hang {uuid.uuid4().hex[:8]} [slow 90]"
        started = time.monotonic()
        ts = b.mention(marker)
        assert b.wait(ts, 60) == {"warning"}
        assert time.monotonic() - started < 45  # the server alone would wait for the model
        [(_, text)] = b.said(ts)
        assert "did not finish within 8 seconds" in text, text
        [(_, otid, replies)] = b.server.messages(b.agents["hank"], marker)
        assert otid == b.otid(ts) and replies == []  # sent once, no answer kept
        metrics = httpx.get(f"{b.bridge.url}/metrics", timeout=5).text
        assert 'method="WS",route="abort_message"' in metrics  # the bridge's deadline aborted the server's turn


def test_stopped_past_its_grace_mid_stream_the_draft_the_thread_saw_stays(server: AppServer, tmp_path: Path) -> None:
    """A bridge stopped past SHUTDOWN_GRACE_SECONDS closes its socket under alice's streaming reply; 0.34.12 then
    kept only the chunk in flight ("w70 "), which the restarted bridge used to write over her 60-word draft."""
    with bound(server, tmp_path, names=("alice", "bob"), SHUTDOWN_GRACE_SECONDS="2", LETTA_STREAM_TOKENS="true") as b:
        marker = f"grace {uuid.uuid4().hex[:8]} [long 300]"
        ts = b.mention(marker)
        b.slack.wait_for(lambda: any(len(text) > 60 for _, text in b.said(ts)), 60)
        b.bridge.stop()
        [(name, seen)] = b.said(ts)
        b.bridge.restart()
        assert b.wait(ts, 120) == {"warning"}
        said = b.said(ts)
        print(f"stopped mid-stream: shown {seen!r}, kept {b.server.said_to(b.agents['alice'], marker)}, then {said}")
        assert name == "alice" and said[0][0] == "alice" and said[0][1].startswith(seen), said
        assert "cut off" in said[1][1] and said[2][0] == "bob"
        assert b.counts(marker, "alice", "bob") == [1, 1]


def test_kill_9_mid_turn_asks_nobody_twice(server: AppServer, tmp_path: Path) -> None:
    with bound(server, tmp_path) as b:
        marker = f"survive {uuid.uuid4().hex[:8]} [slow 6]"
        ts = b.mention(marker)
        deadline = time.monotonic() + 60
        while not any(marker in c["user"] for c in server.llm.calls):
            assert time.monotonic() < deadline, "the first agent was never asked"
            time.sleep(0.1)
        time.sleep(2)  # inside alice's six-second model call
        b.bridge.kill()
        b.bridge.restart()
        b.wait(ts, 180)
        said = b.said(ts)
        print(f"kill -9 on the App Server: posted {said}")
        assert said[-2:] == [("bob", "bob says hi"), ("carol", "carol says hi")]
        assert any("alice" in f"{name} {text}" for name, text in said[:-2])  # her answer, or why there is none
        assert b.counts(marker, *NAMES) == [1, 1, 1]
        again = f"again {uuid.uuid4().hex[:8]}"
        follow = b.mention(again, thread_ts=ts)
        assert b.wait(follow) == {"white_check_mark"}
        assert b.said(ts)[-3:] == [(n, f"{n} says hi") for n in NAMES]
