"""Many workspaces on Postgres with two bridge processes: an install through one is served by the other, each
workspace reaches only its own Letta server, and a revocation through one stops the other's work too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BridgeProcess
from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import ACME, BETA, bind, done
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
