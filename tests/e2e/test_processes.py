"""Two `python -m bridge serve` processes on one Postgres database, as a PaaS runs `web` scaled to two.

Slack delivers each mention to one process and its retry to the other; one process is killed with SIGKILL in
the middle of a turn and started again. Counting what the fake Letta ran and what the fake Slack received proves
the shared-database guarantees: every event handled once, each binding's turns one at a time and in order, no
agent with two sends in flight even when it belongs to two bindings run by two processes, and the dead
process's turn resumed by the other within the lease, and never twice.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

pytestmark = pytest.mark.slow  # soak, kill -9 or several processes: .ci/run's slow stage

LEASE = 2.0
C1, C2 = "C0PROC001", "C0PROC002"
QUESTION = re.compile(r"question \d+")


def deliver(bridge: BridgeProcess, body: bytes, retry: int = 0) -> int | None:
    """Post an event as Slack does (a retry carries a fresh timestamp and X-Slack-Retry-Num); None if the
    process is gone."""
    headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
    try:
        return bridge.post(body, timestamp=int(time.time()) + retry, **headers).status_code
    except httpx.HTTPError:
        return None


@pytest.mark.timeout(180)
def test_two_processes_share_one_database_without_losing_or_repeating_anything(
    pg_server: PgServer, tmp_path: Path
) -> None:
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        agents = {name: letta.add_agent(name) for name in ("alice", "bob", "carol")}
        for name, agent_id in agents.items():
            letta.set_delay(agent_id, 0.3)
            letta.set_reply(agent_id, lambda text, name=name: f"{name} on {QUESTION.findall(text)[-1]}")
        crews = {C1: ("alice", "bob"), C2: ("bob", "carol")}  # bob answers in both channels
        database = postgres_env(pg_server.create_database())
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", **database)
        for channel, names in crews.items():
            group = letta.add_group([agents[n] for n in names])
            assert run_cli(env, "channels", "connect", channel, group).returncode == 0
        web1 = BridgeProcess(env).start(tmp_path / "web1.log")
        web2 = BridgeProcess(env).start(tmp_path / "web2.log")
        try:
            sent: dict[str, list[str]] = {C1: [], C2: []}
            accepted = 0

            def mention(n: int, channel: str, first: BridgeProcess, second: BridgeProcess) -> None:
                nonlocal accepted
                event = mention_event(f"question {n}", channel=channel)
                body = event_body(event)
                # Slack's first delivery to one process, its retry (same event id) to the other.
                assert deliver(first, body) == 200
                assert deliver(second, body, retry=1) in (200, None)
                sent[channel].append(event["ts"])
                accepted += 1

            # web1 takes C1's turns and web2 takes C2's: bob is asked by two processes at once.
            for n in range(3):
                mention(n, C1, web1, web2)
                mention(n, C2, web2, web1)

            # web1 dies in the middle of a send to one of its agents.
            letta.wait_for(lambda: any(i.finished is None and i.text.endswith("question 1")
                                       for i in letta.inputs if i.agent_id in (agents["alice"], agents["bob"])), 15)
            web1.kill()
            killed_at = time.monotonic()
            for n in range(3, 5):  # Slack keeps delivering to the survivor meanwhile
                mention(n, C1, web2, web1)
                mention(n, C2, web2, web1)
            web1.start(tmp_path / "web1-again.log")  # the platform restarts the dead process
            for n in range(5, 7):
                mention(n, C1, web1, web2)
                mention(n, C2, web2, web1)

            def replies(channel: str) -> list[tuple[str, str, str]]:
                return [(p.args["thread_ts"], p.args["username"], p.args["text"])
                        for p in slack.posts(channel) if p.args.get("username")]

            slack.wait_for(lambda: all(len(replies(c)) == 2 * len(sent[c]) for c in crews), 60)
            # The turn web1 was running was finished by another process within the lease (plus a sweep).
            assert time.monotonic() - killed_at < 30
            time.sleep(1.0)  # anything run twice would show up now

            for channel, names in crews.items():
                expected = [(ts, name, f"{name} on question {n}")
                            for n, ts in enumerate(sent[channel]) for name in names]
                assert replies(channel) == expected, f"{channel}: lost, repeated or out of order"
            ran = [(i.agent_name, i.otid) for i in letta.inputs]
            assert len(ran) == 2 * sum(len(v) for v in sent.values()), "a Letta turn was lost or repeated"
            assert len(set(ran)) == len(ran), "an agent was sent one turn twice"
            assert letta.overlaps == [], "an agent had two sends in flight"
            logs = "".join((tmp_path / name).read_text() for name in ("web1.log", "web1-again.log", "web2.log"))
            assert logs.count("event accepted") == accepted
            assert logs.count("duplicate event dropped") >= accepted - 4, "a retry reached a second turn"
            assert "resumed=True" in logs, "nobody resumed the killed process's turn"
            assert "Traceback" not in logs
        finally:
            web1.stop()
            web2.stop()
