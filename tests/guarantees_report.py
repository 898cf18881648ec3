"""Rerunnable figures for the delivery guarantees: deliver mentions with duplicates, kill -9 the bridge at
random moments, restart it, and count what Letta ran and what Slack got.

    python -m tests.guarantees_report [--mentions 30] [--kills 5] [--runner bridge|server] [--seed 1] [--postgres]

--postgres runs the bridge on a throwaway PostgreSQL server (the machine's binaries, see tests/pg.py) instead of
a SQLite file.

Prints one line per figure and exits non-zero if any mention was answered twice or not at all.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import FakeSlack
from tests.pg import NO_BINARIES, PgServer

AGENTS = ("alice", "bob")
CHANNELS = ("C0SOAK001", "C0SOAK002", "C0SOAK003")


@dataclass
class Figures:
    mentions: int
    duplicates: int
    kills: int
    letta_turns: int
    expected_turns: int
    posts: int
    expected_posts: int
    unanswered: int
    doubled: int

    @property
    def ok(self) -> bool:
        return self.unanswered == 0 and self.doubled == 0 and self.letta_turns == self.expected_turns

    def lines(self) -> list[str]:
        return [
            f"mentions delivered: {self.mentions}",
            f"duplicate deliveries injected (retries and message twins): {self.duplicates}",
            f"kill -9 survived: {self.kills}",
            f"Letta agent turns: {self.letta_turns} (expected {self.expected_turns})",
            f"agent replies posted: {self.posts} (expected {self.expected_posts})",
            f"mentions with a missing reply: {self.unanswered}",
            f"mentions with a reply posted twice: {self.doubled}",
            "result: " + ("every mention answered exactly once" if self.ok else "GUARANTEE BROKEN"),
        ]


def soak(workdir: Path, mentions: int, kills: int, version: str, seed: int, database_url: str | None = None) -> Figures:
    rng = random.Random(seed)
    with FakeSlack() as slack, FakeLetta(version=version) as letta:
        ids = [letta.add_agent(name) for name in AGENTS]
        for agent_id in ids:
            letta.set_delay(agent_id, 0.15)
        database = postgres_env(database_url) if database_url else {}
        env = base_env(slack.api_url, letta.base_url, workdir / "soak.db", LETTA_RECOVERY_WAIT_SECONDS="5", **database)
        for channel in CHANNELS:
            group = letta.add_group(ids)
            assert run_cli(env, "channels", "connect", channel, group).returncode == 0
        bridge = BridgeProcess(env).start(workdir / "soak-0.log")
        sent: list[tuple[str, str, bytes]] = []
        duplicates = 0
        kill_at = set(rng.sample(range(1, mentions), min(kills, mentions - 1)))
        restarts = 0
        for n in range(mentions):
            if n in kill_at:
                time.sleep(rng.uniform(0.0, 0.4))  # land the kill anywhere in a turn
                bridge.kill()
                restarts += 1
                bridge.restart(workdir / f"soak-{restarts}.log")  # on a fresh port if another test took this one
            channel = rng.choice(CHANNELS)
            event = mention_event(f"question {n}", channel=channel)
            body = event_body(event)
            bridge.post(body)
            sent.append((channel, event["ts"], body))
            if rng.random() < 0.3:
                bridge.post(body, timestamp=int(time.time()) + 1, **{"X-Slack-Retry-Num": "1"})
                duplicates += 1
            if rng.random() < 0.3:
                bridge.post(event_body(dict(event, type="message")))
                duplicates += 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answered = sum(1 for c, ts, _ in sent if len(_replies(slack, c, ts)) >= len(AGENTS))
            if answered == len(sent):
                break
            time.sleep(0.2)
        time.sleep(1.0)
        bridge.stop()
        counts = [len(_replies(slack, c, ts)) for c, ts, _ in sent]
        return Figures(
            mentions=mentions,
            duplicates=duplicates,
            kills=restarts,
            letta_turns=len(letta.inputs),
            expected_turns=mentions * len(AGENTS),
            posts=sum(counts),
            expected_posts=mentions * len(AGENTS),
            unanswered=sum(1 for c in counts if c < len(AGENTS)),
            doubled=sum(1 for c in counts if c > len(AGENTS)),
        )


def _replies(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    return [p.args["username"] for p in slack.posts(channel, ts) if p.args.get("username")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mentions", type=int, default=30)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--runner", choices=["bridge", "server"], default="bridge")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", action="store_true", help="run the bridge on a throwaway PostgreSQL server")
    args = parser.parse_args(argv)
    version = "0.11.7" if args.runner == "server" else "0.16.8"
    server = PgServer.find() if args.postgres else None
    if args.postgres and server is None:
        print(NO_BINARIES, file=sys.stderr)
        return 2
    try:
        url = server.start().create_database() if server else None
        with tempfile.TemporaryDirectory() as tmp:
            figures = soak(Path(tmp), args.mentions, args.kills, version, args.seed, url)
    finally:
        if server:
            server.stop()
    print(f"runner: {args.runner} (fake Letta {version}), database: {'PostgreSQL' if server else 'SQLite'}")
    for line in figures.lines():
        print(line)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
