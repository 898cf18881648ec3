"""Stop for a turn whose process died (docs/sessions.md, "Stop really stops"), with two `serve` processes on one
Postgres database: kill -9 in the middle of a turn, then Stop. The stop reaches the survivor, which takes the dead
process's binding over once its lease has run out and ends the stop there. And a stop that reaches the other
process while the turn's own process lives is still done by the turn itself. (One process on SQLite:
tests/e2e/test_sessions.py.)"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.e2e.conftest import new_channel, postgres_env
from tests.e2e.harness import BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, next_ts
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer
from tests.reference import SLACK, load

pytestmark = pytest.mark.slow  # kill -9 and several processes: .ci/run's slow stage

ASKER = "U0123ABCD"
STOPPED = f"Stopped by <@{ASKER}>."


@dataclass
class Rig:
    slack: FakeSlack
    letta: FakeLetta
    env: dict[str, str]
    channel: str
    agents: dict[str, str]
    database: str

    def session_stopped(self, bridge: BridgeProcess, thread_ts: str) -> None:
        event = copy.deepcopy(load(SLACK / "events" / "agent_session_stopped.json"))["event"]
        event.update(channel=self.channel, thread_ts=thread_ts, user=ASKER, event_ts=next_ts())
        assert bridge.post(event_body(event)).status_code == 200

    def status(self, ts: str) -> str:
        async def read() -> str:
            db = await asyncpg.connect(self.database)
            try:
                return str(await db.fetchval("SELECT status FROM turns WHERE message_ts=$1", ts) or "")
            finally:
                await db.close()

        return asyncio.run(read())

    def asked(self, name: str) -> int:
        return len([i for i in self.letta.inputs if i.agent_id == self.agents[name]])

    def thread_texts(self, thread_ts: str) -> list[str]:
        return [str(p.args["text"]) for p in self.slack.posts(self.channel, thread_ts)]


@pytest.fixture
def rig(pg_server: PgServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    slack, letta = FakeSlack(), FakeLetta(version="0.16.8")
    slack.start()
    letta.start()
    slack.agent_app = getattr(request, "param", True)
    slack.add_user(ASKER, "maria", display_name="maria")
    agents = {name: letta.add_agent(name) for name in ("alice", "bob", "carol")}
    letta.set_delay(agents["alice"], 8.0)  # alice's model call outlives her process
    group = letta.add_group(list(agents.values()), description="crew")
    channel = new_channel()
    slack.add_channel(channel, "crew")
    database = pg_server.create_database()
    env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", **postgres_env(database))
    assert run_cli(env, "channels", "connect", channel, group).returncode == 0
    try:
        yield Rig(slack, letta, env, channel, agents, database)
    finally:
        letta.stop()
        slack.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rig", [True, False], ids=["session", "fallbacks"], indirect=True)
def test_a_turn_whose_process_died_is_stopped_by_the_process_taking_it_over(rig: Rig, tmp_path: Path) -> None:
    """Before, the stop marked the turn `stopped`, a finished state: the survivor's sweep never looked at it
    again, so its session stayed `processing` (or its 👀 and status line stayed up) for good, nobody said it was
    stopped, and alice's run went on."""
    web1 = BridgeProcess(rig.env).start(tmp_path / "web1.log")
    web2 = BridgeProcess(rig.env).start(tmp_path / "web2.log")
    try:
        event, response = web1.mention("a long question", rig.channel, user=ASKER)
        assert response.status_code == 200
        root = event["ts"]
        rig.letta.wait_for(lambda: rig.asked("alice") == 1, timeout=15)
        if rig.slack.agent_app:
            rig.slack.wait_for(lambda: rig.slack.session_statuses(rig.channel, root) == ["processing"])
        else:
            rig.slack.wait_for(lambda: "eyes" in rig.slack.reactions(rig.channel, root))
            rig.slack.wait_for(lambda: bool(rig.slack.calls_to("assistant.threads.setStatus")))
        web1.kill()
        rig.session_stopped(web2, root)
        rig.slack.wait_for(lambda: rig.status(root) == "stopped", timeout=20)
        assert rig.thread_texts(root) == [STOPPED]
        if rig.slack.agent_app:
            assert rig.slack.session_statuses(rig.channel, root) == ["processing", "active"]
        else:
            assert rig.slack.reactions(rig.channel, root) == {"black_square_for_stop"}
            cleared = [c.args.get("status") for c in rig.slack.calls_to("assistant.threads.setStatus")]
            assert cleared[-1] == ""
        # alice's run, started by the dead process, was cancelled on Letta's agent route.
        assert [(kind, ident) for kind, ident, _runs in rig.letta.cancels] == [("agents", rig.agents["alice"])]
        web1.start(tmp_path / "web1-again.log")
        time.sleep(3.0)  # past another lease and sweep: nothing more is run or posted for the stopped turn
        assert rig.thread_texts(root) == [STOPPED]
        assert (rig.asked("alice"), rig.asked("bob"), rig.asked("carol")) == (1, 0, 0)
        logs = web1.logs() + web2.logs() + (tmp_path / "web1.log").read_text()
        assert "Traceback" not in logs, logs
    finally:
        web1.stop()
        web2.stop()


@pytest.mark.timeout(120)
def test_a_turn_whose_process_lives_still_stops_itself_when_the_stop_reaches_the_other_process(
    rig: Rig, tmp_path: Path
) -> None:
    """The running turn's process sees the `stopping` mark within TURN_STOP_POLL_SECONDS and ends the turn itself,
    as before; the other process, which recorded the stop, does nothing more (the live lease keeps it out)."""
    web1 = BridgeProcess(rig.env).start(tmp_path / "web1.log")
    web2 = BridgeProcess(rig.env).start(tmp_path / "web2.log")
    try:
        event, response = web1.mention("a long question", rig.channel, user=ASKER)
        assert response.status_code == 200
        root = event["ts"]
        rig.letta.wait_for(lambda: rig.asked("alice") == 1, timeout=15)
        started = time.monotonic()
        rig.session_stopped(web2, root)
        rig.slack.wait_for(lambda: rig.status(root) == "stopped", timeout=10)
        assert time.monotonic() - started < 4.0, "the turn waited for a takeover instead of stopping itself"
        time.sleep(3.0)  # past a lease and a sweep: nothing is said twice
        assert rig.thread_texts(root) == [STOPPED]
        assert rig.slack.session_statuses(rig.channel, root) == ["processing", "active"]
        assert [(kind, ident) for kind, ident, _runs in rig.letta.cancels] == [("agents", rig.agents["alice"])]
        assert "stop ended for a turn no process ran" not in web1.logs() + web2.logs()
        assert (rig.asked("alice"), rig.asked("bob"), rig.asked("carol")) == (1, 0, 0)
    finally:
        web1.stop()
        web2.stop()
