"""The loopback fakes (tests/fakes) in a process of their own, driven over a pipe.

Running them apart from the load generator keeps their CPU out of the client's timings on a 2-core
machine. `FakesProcess` is the parent's handle; `Host` runs in the child. Times are `time.monotonic()`,
which is CLOCK_MONOTONIC on Linux and so comparable across processes.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

DONE_REACTIONS = frozenset({"white_check_mark", "warning"})
SPEAKER = ("U0123ABCD", "maria")
_ID = re.compile(r"(?<=/)[a-z]+-[0-9a-f-]{8,}")  # agent-…, group-…, conv-…: one route, whatever the id


@dataclass(frozen=True)
class Crew:
    """A channel and the group (of named agents) it will be bound to."""

    channel: str
    group_id: str
    agents: tuple[tuple[str, str], ...]  # (agent id, name), in speaking order


Span = tuple[str, str, float, float | None]  # Letta's record of one agent turn: agent id, text, started, finished


@dataclass(frozen=True)
class Post:
    channel: str
    thread_ts: str
    username: str
    at: float


def _make_slack() -> Any:
    from tests.fakes.slack import FakeSlack

    class BenchSlack(FakeSlack):
        """Notes each reply post and each finishing reaction as it is answered, so waits need no polling."""

        def __init__(self) -> None:
            super().__init__()
            self.bench_posts: list[Post] = []
            self.bench_drafts: list[Post] = []  # token streaming: each reply's draft as it opens
            self.bench_done: dict[tuple[str, str], float] = {}
            self.bench_cond = threading.Condition()

        def _dispatch(self, method: str, args: dict[str, Any], token: str | None) -> Any:
            result = super()._dispatch(method, args, token)
            ok = result[0] == 200 and result[2].get("ok")
            if ok and method == "chat.startStream":
                username = str(args.get("username") or "")
                draft = Post(str(args.get("channel")), str(args.get("thread_ts")), username, time.monotonic())
                with self.bench_cond:
                    self.bench_drafts.append(draft)
            if ok and method == "chat.postMessage":
                username = str(args.get("username") or "")
                post = Post(str(args.get("channel")), str(args.get("thread_ts")), username, time.monotonic())
                with self.bench_cond:
                    self.bench_posts.append(post)
                    self.bench_cond.notify_all()
            elif ok and method == "reactions.add" and args.get("name") in DONE_REACTIONS:
                with self.bench_cond:
                    self.bench_done[(str(args.get("channel")), str(args.get("timestamp")))] = time.monotonic()
                    self.bench_cond.notify_all()
            return result

    return BenchSlack()


class Host:
    """Lives in the child: owns the fakes and answers the parent's calls."""

    def __init__(self, letta_version: str) -> None:
        from tests.fakes.letta import FakeLetta

        self.slack = _make_slack()
        self.slack.start()
        self.slack.add_user(SPEAKER[0], SPEAKER[1], display_name=SPEAKER[1])
        self.letta = FakeLetta(version=letta_version)
        self.letta.start()

    def urls(self) -> tuple[str, str]:
        return self.slack.api_url, self.letta.base_url

    def crews(self, prefix: str, count: int, agents: int, delay: float) -> list[Crew]:
        """`count` channels, each with its own group of `agents` agents taking `delay` s per turn."""
        out = []
        for i in range(count):
            members = []
            for j in range(agents):
                name = f"agent{j + 1}"
                agent_id = self.letta.add_agent(name)
                self.letta.set_delay(agent_id, delay)
                members.append((agent_id, name))
            group_id = self.letta.add_group([a for a, _ in members], description=f"crew {i}")
            channel = f"C{prefix}{i:05d}"
            self.slack.add_channel(channel, f"bench-{prefix.lower()}-{i}")
            out.append(Crew(channel, group_id, tuple(members)))
        return out

    def set_delay(self, agent_ids: list[str], delay: float) -> None:
        for agent_id in agent_ids:
            self.letta.set_delay(agent_id, delay)

    def wait_posts(self, count: int, timeout: float) -> int:
        """Block until `count` reply posts were answered (or `timeout`); returns how many there are."""
        with self.slack.bench_cond:
            self.slack.bench_cond.wait_for(lambda: len(self.slack.bench_posts) >= count, timeout)
            return len(self.slack.bench_posts)

    def wait_done(self, keys: list[tuple[str, str]], timeout: float) -> int:
        """Block until each (channel, message ts) got its finishing reaction; returns how many did."""
        with self.slack.bench_cond:
            self.slack.bench_cond.wait_for(lambda: all(k in self.slack.bench_done for k in keys), timeout)
            return sum(k in self.slack.bench_done for k in keys)

    def wait_done_count(self, count: int, timeout: float) -> int:
        """Block until `count` turns got their finishing reaction; returns how many did."""
        with self.slack.bench_cond:
            self.slack.bench_cond.wait_for(lambda: len(self.slack.bench_done) >= count, timeout)
            return len(self.slack.bench_done)

    def posts(self, since: int = 0) -> list[Post]:
        with self.slack.bench_cond:
            return list(self.slack.bench_posts[since:])

    def post_count(self) -> int:
        with self.slack.bench_cond:
            return len(self.slack.bench_posts)

    def done_count(self) -> int:
        with self.slack.bench_cond:
            return len(self.slack.bench_done)

    def letta_spans(self) -> list[Span]:
        """(agent id, text, started, finished) for every agent turn Letta ran, in start order."""
        return [(i.agent_id, i.text, i.started, i.finished) for i in self.letta.inputs]

    def drafts(self) -> list[Post]:
        with self.slack.bench_cond:
            return list(self.slack.bench_drafts)

    def first_tokens(self) -> list[tuple[str, float]]:
        """(agent id, when) of the first token-streamed fragment of each agent stream."""
        return list(self.letta.first_tokens)

    def set_token_delay(self, seconds: float) -> None:
        self.letta.token_delay = seconds

    def notice_calls(self, channel: str, thread_ts: str | None = None) -> dict[str, int]:
        """The Slack calls the bridge made for queue notices in a channel (a thread): posts, and edits of them."""
        posts = [
            c
            for c in self.slack.posts(channel, thread_ts)
            if str(c.args.get("text", "")).startswith("Queued") and c.response
        ]
        ts = {str(c.response["ts"]) for c in posts if c.response}
        edits = [c for c in self.slack.calls_to("chat.update") if c.ok and c.args.get("ts") in ts]
        return {"posts": len(posts), "edits": len(edits)}

    def letta_send_count(self) -> int:
        return len(self.letta.sends())

    def call_census(self, since: float) -> dict[str, int]:
        """How many of each Slack method and Letta route (ids folded to `*`) were asked for since `since`
        (monotonic): what a burst costs in calls, beside what it costs in time."""
        out: Counter[str] = Counter(f"slack {c.method}" for c in list(self.slack.calls) if c.at >= since)
        out.update(f"letta {r.method} {_ID.sub('*', r.path)}" for r in self.letta.requests if r.started >= since)
        return dict(sorted(out.items()))

    def timeline(self, since: float) -> list[tuple[float, float, str]]:
        """(start, end, what) of every Slack call and Letta request since `since` (monotonic), in start order:
        where a turn's time goes between the fakes, for reading a slow figure by hand."""
        out = [(c.at, c.at, f"slack {c.method}") for c in list(self.slack.calls) if c.at >= since]
        out += [
            (r.started, r.finished or r.started, f"letta {r.method} {_ID.sub('*', r.path)}")
            for r in list(self.letta.requests)
            if r.started >= since
        ]
        return sorted(out)

    def stop(self) -> None:
        self.letta.stop()
        self.slack.stop()


def _serve(conn: Connection, letta_version: str) -> None:
    # Requests the fake Letta still holds when it stops are dropped on purpose; asyncio need not say so.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    host = Host(letta_version)
    conn.send(("ok", host.urls()))
    while True:
        name, args = conn.recv()
        if name == "exit":
            host.stop()
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", getattr(host, name)(*args)))
        except Exception:
            conn.send(("err", traceback.format_exc()))


class FakesProcess:
    """The parent's handle on the fakes' process: `call("crews", ...)` runs `Host.crews` there."""

    def __init__(self, letta_version: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, letta_version), name="bench-fakes", daemon=True)
        self._proc.start()
        self.slack_api_url, self.letta_url = self._answer(60)
        self.letta_version = letta_version

    @property
    def pid(self) -> int:
        return int(self._proc.pid or 0)

    def _answer(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while not self._conn.poll(min(1.0, max(0.0, deadline - time.monotonic()))):
            if not self._proc.is_alive():
                raise RuntimeError(f"the fakes' process died with exit code {self._proc.exitcode}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the fakes' process did not answer within {timeout:g}s")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"the fakes' process failed:\n{value}")
        return value

    def call(self, name: str, *args: Any, timeout: float = 120.0) -> Any:
        self._conn.send((name, args))
        return self._answer(timeout)

    def crews(self, prefix: str, count: int, agents: int = 2, delay: float = 0.0) -> list[Crew]:
        return list(self.call("crews", prefix, count, agents, delay))

    def wait_posts(self, count: int, timeout: float) -> int:
        return int(self.call("wait_posts", count, timeout, timeout=timeout + 30))

    def wait_done(self, keys: list[tuple[str, str]], timeout: float) -> int:
        return int(self.call("wait_done", keys, timeout, timeout=timeout + 30))

    def posts(self, since: int = 0) -> list[Post]:
        return list(self.call("posts", since))

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self.call("exit", timeout=30)
            except (OSError, EOFError, TimeoutError, RuntimeError):
                pass
            self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)

    def __enter__(self) -> FakesProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
