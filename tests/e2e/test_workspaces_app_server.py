"""OAuth mode (many workspaces) where a workspace's own Letta server is a Letta App Server (issue 15): set with
/letta setup as http://… (told apart per server by GET /app-server-info) or ws://…, bound with its agent-local
ids, and answered over the App Server's socket while another workspace stays on the REST default."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.oauth import Many, many_world
from tests.e2e.test_workspaces import ACME, BETA, bind, done
from tests.fakes.appserver import FakeAppServer
from tests.fakes.slack import Grant


def beta_on_its_app_server(world: Many, app: FakeAppServer) -> list[str]:
    """Acme and Beta installed, Beta's own server set to `app` written http://… and its agents ari and bea
    connected in C0BETA001; their ids."""
    assert world.install(Grant(ACME, "Acme")).status_code == 200
    assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
    saved = world.submit_setup(BETA, app.url.replace("ws://", "http://"))
    assert saved.status_code == 200 and "update" in saved.text, saved.text
    ids = [app.add_agent(name) for name in ("ari", "bea")]
    world.slack.add_channel("C0BETA001", "beta-crew")
    ack, url = world.command("connect " + " ".join(ids), "C0BETA001", BETA)
    assert ack.status_code == 200
    assert "Connected this channel" in world.answer(url), world.answer(url)
    return ids


def test_a_workspace_on_its_own_app_server_is_detected_and_answered(tmp_path: Path) -> None:
    app = FakeAppServer(scale=0.001)
    app.start()
    try:
        with many_world(tmp_path) as world:
            ids = beta_on_its_app_server(world, app)
            refused = world.submit_setup(BETA, "ftp://127.0.0.1:1")  # refused: the saved server stays
            assert '"response_action":"errors"' in refused.text.replace(" ", "") and "wss://" in refused.text
            acme = bind(world, ACME, "C0ACME001", world.letta, ("alice",))

            b, _ = world.mention("hello from beta", "C0BETA001", BETA)
            a, _ = world.mention("hello from acme", "C0ACME001", ACME)
            done(world, "C0BETA001", b["ts"])
            done(world, "C0ACME001", a["ts"])
            said = [(p.args["username"], p.args["text"]) for p in world.slack.posts("C0BETA001", b["ts"])]
            assert said == [("ari", "ari says hi"), ("bea", "bea says hi")]
            assert [t.agent_id for t in app.inputs] == ids and all(t.conversation != "default" for t in app.inputs)
            assert [i.agent_id for i in world.letta.inputs] == [acme["alice"]]  # acme stays on its REST server
            assert all("hello from beta" not in str(s.body) for s in world.letta.sends())
    finally:
        app.stop()
