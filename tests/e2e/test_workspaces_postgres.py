"""Many workspaces on Postgres with two bridge processes: an install through one is served by the other, each
workspace reaches only its own Letta server, and a revocation through one stops the other's work too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess
from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import ACME, BETA, bind, done, renewals
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import Grant
from tests.pg import PgServer


@pytest.mark.slow
def test_two_processes_serve_two_workspaces_on_two_servers(tmp_path: Path, pg_server: PgServer) -> None:
    other = FakeLetta(version="0.16.8", api_key="sk-beta-letta")
    other.start()
    settings = postgres_env(pg_server.create_database())
    try:
        with many_world(tmp_path, **settings) as world:
            second = BridgeProcess(dict(world.env)).start(tmp_path / "second.log")
            try:
                assert world.install(Grant(ACME, "Acme", rotation=True, expires_in=600)).status_code == 200
                assert world.install(Grant(BETA, "Beta")).status_code == 200
                assert world.submit_setup(BETA, other.base_url, "sk-beta-letta").status_code == 200
                acme = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
                beta = bind(world, BETA, "C0BETA001", other, ("bruno",))
                world.letta.set_delay(acme["alice"], 0.5)
                other.set_delay(beta["bruno"], 0.5)
                world.bridge, first = second, world.bridge  # the second process takes the mentions
                a, ra = world.mention("acme on two", "C0ACME001", ACME)
                b, rb = world.mention("beta on two", "C0BETA001", BETA)
                assert ra.status_code == rb.status_code == 200
                done(world, "C0ACME001", a["ts"], 30)
                done(world, "C0BETA001", b["ts"], 30)
                assert [p.args["username"] for p in world.slack.posts("C0ACME001", a["ts"])] == ["alice"]
                assert [p.args["username"] for p in world.slack.posts("C0BETA001", b["ts"])] == ["bruno"]
                assert all("beta on two" not in str(s.body) for s in world.letta.sends())
                assert any("beta on two" in str(s.body) for s in other.sends())

                # Revoked through the first process: the second refuses the workspace's next request.
                world.bridge = first
                world.slack.revoke(BETA)
                assert world.event("tokens_revoked", BETA).status_code == 200
                world.bridge = second
                _, late = world.mention("still?", "C0BETA001", BETA)
                assert late.status_code == 200 and "install" in late.text.lower()
                world.bridge = first
            finally:
                second.stop()
                assert "Traceback" not in second.logs(), second.logs()
    finally:
        other.stop()



@pytest.mark.slow
def test_a_token_renewed_mid_turn_while_its_send_holds_the_agent_lock(tmp_path: Path, pg_server: PgServer) -> None:
    """A reply growing in Slack (LETTA_STREAM_TOKENS) makes Slack calls while its send holds the agent's lock, one
    connection of the lock pool (MAX_CONCURRENT_TURNS=1: the only one). A renewal that waited for a connection of
    that pool waited for the send, which waited for the renewal: the turn hung until SIGTERM."""
    settings = postgres_env(pg_server.create_database())
    tokens = {"LETTA_STREAM_TOKENS": "true", "MAX_CONCURRENT_TURNS": "1", "SLACK_TOKEN_ROTATION_MINUTES": "1"}
    with many_world(tmp_path, **tokens, **settings) as world:
        assert world.install(Grant(ACME, "Acme", rotation=True, expires_in=62)).status_code == 200
        agents = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        world.letta.set_delay(agents["alice"], 12.0)  # past the bridge's token cache (10 s): the draft renews
        event, _ = world.mention("rotate please", "C0ACME001", ACME)
        world.slack.wait_for(lambda: "white_check_mark" in world.slack.reactions("C0ACME001", event["ts"]), 40)
        assert renewals(world) and all(c.ok for c in renewals(world))  # renewed mid-turn (fresh at the mention)
        assert not [c for c in world.slack.calls if c.error == "token_expired"]
