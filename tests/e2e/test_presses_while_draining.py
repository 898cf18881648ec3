"""A PaaS restart (SIGTERM) on Postgres: the bridge drains for SHUTDOWN_GRACE_SECONDS and still answers buttons
on the router's kept-alive connections. Before, a Stop or an Approve pressed then was acknowledged (so Slack never
sent it again) and dropped: the turn went on, the card waited, nobody was told. A press is now taken while the
turns have their grace."""

from __future__ import annotations

import copy
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.harness import SIGNING_SECRET, BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import action_body, next_ts, signed_headers
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer
from tests.reference import SLACK, load

ASKER = "U0123ABCD"
FORM = "application/x-www-form-urlencoded"


def test_stop_pressed_while_a_restart_drains_stops_the_turn_or_says_so(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.create_database()
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        slack.agent_app = False  # no agent sessions: the bridge's own Stop button stands in (manifest without them)
        slack.add_user(ASKER, "maria", display_name="maria")
        agents = {name: letta.add_agent(name) for name in ("alice", "bob")}
        channel = "C0DRAIN01"
        slack.add_channel(channel, "deploys")
        env = base_env(slack.api_url, letta.base_url, tmp_path / "unused.db", DATABASE_URL=url,
                       SHUTDOWN_GRACE_SECONDS="15")
        assert run_cli(env, "channels", "connect", channel, *agents.values()).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            # The platform's router keeps its connection to the process open.
            router = httpx.Client(base_url=bridge.url, timeout=10)
            assert router.get("/healthz").status_code == 200
            letta.set_delay(agents["alice"], 5.0)
            event, answered = bridge.mention("a slow one", channel, user=ASKER)
            assert answered.status_code == 200
            slack.wait_for(lambda: any(e.get("blocks") for e in slack.ephemerals), 10)
            letta.wait_for(lambda: len(letta.inputs) == 1, 10)

            assert bridge.proc is not None
            bridge.proc.send_signal(signal.SIGTERM)  # a deploy: the turn in flight has 15 s to finish
            deadline = time.monotonic() + 10
            while router.get("/healthz").json()["status"] != "stopping":
                assert time.monotonic() < deadline
                time.sleep(0.1)

            # maria presses Stop on the router's kept-alive connection.
            shown = [e for e in slack.ephemerals if e.get("blocks")]
            button = shown[-1]["blocks"][1]["elements"][0]
            payload = copy.deepcopy(load(SLACK / "interactivity" / "block_actions_static_select.json"))
            answer_url = slack.response_url()
            pressed_button = {**button, "block_id": "letta_stop", "action_ts": next_ts()}
            payload.update(response_url=answer_url, actions=[pressed_button])
            payload["user"].update(id=ASKER)
            payload["channel"]["id"] = payload["container"]["channel_id"] = channel
            body = action_body(payload)
            pressed = router.post("/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body, FORM))
            assert pressed.status_code == 200  # acknowledged: Slack never delivers this press again
            router.close()

            assert bridge.proc.wait(30) == 0
            time.sleep(0.5)
            agent_posts = [p for p in slack.posts(channel, event["ts"]) if p.args.get("username")]
            answers = [p for p in slack.response_posts if p["_url"] == answer_url]
            assert answers, "Stop was acknowledged, then maria was told nothing"
            assert "bob" not in [p.args.get("username") for p in agent_posts], "the turn went on past the Stop"
            assert not [i for i in letta.inputs if i.agent_id == agents["bob"]], "bob was asked after the Stop"
        finally:
            bridge.stop()


def test_approve_pressed_while_a_restart_drains_is_taken_or_said(pg_server: PgServer, tmp_path: Path) -> None:
    """The same for a tool approval card: Approve pressed during the drain reaches Letta."""
    from tests.e2e.approval_rig import open_rig

    url = pg_server.create_database()
    letta = FakeLetta(version="0.16.8")
    letta.start()
    try:
        agent = letta.add_agent("finn")
        with open_rig(tmp_path, letta, letta.base_url, agent, DATABASE_URL=url, SHUTDOWN_GRACE_SECONDS="4") as rig:
            rig.letta.ask_approval(rig.agent, ("shout", '{"message": "hi"}'))
            router = httpx.Client(base_url=rig.bridge.url, timeout=10)
            assert router.get("/healthz").status_code == 200
            root = rig.mention("please use tool shout")
            rig.slack.wait_for(lambda: len(rig.cards(root["ts"])) == 1, 10)
            card = rig.cards(root["ts"])[0]
            assert rig.bridge.proc is not None
            rig.bridge.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while router.get("/healthz").json()["status"] != "stopping":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            body = rig.press_body(card, "letta_approve_tool", ASKER)
            pressed = router.post("/slack/events", content=body, headers=signed_headers(SIGNING_SECRET, body, FORM))
            assert pressed.status_code == 200  # acknowledged: Slack never delivers this press again
            router.close()
            assert rig.bridge.proc.wait(30) == 0
            assert rig.letta.approval_decisions(), "Approve was acknowledged, then dropped"
    finally:
        letta.stop()
