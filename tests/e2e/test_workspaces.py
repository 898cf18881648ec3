"""One bridge, many workspaces (issue 21): installed through Slack's OAuth redirect flow, each workspace on its own
Letta server, isolation, uninstall and revocation, token rotation, Enterprise Grid; on SQLite here, on Postgres with
two processes in test_workspaces_postgres.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.oauth import Many, many_world
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import Grant

ACME, BETA = "T0ACME001", "T0BETA002"


def bind(world: Many, team: str, channel: str, letta: FakeLetta, names: tuple[str, ...]) -> dict[str, str]:
    agents = {name: letta.add_agent(name) for name in names}
    group = letta.add_group(list(agents.values()), description=f"{team} crew")
    world.slack.add_channel(channel, f"chan-{channel.lower()}")
    ack, url = world.command(f"connect {group}", channel, team)
    assert ack.status_code == 200, ack.text
    assert "Connected this channel" in world.answer(url), world.answer(url)
    return agents


def done(world: Many, channel: str, ts: str, timeout: float = 15.0) -> None:
    world.slack.wait_for(lambda: bool({"white_check_mark", "warning"} & world.slack.reactions(channel, ts)), timeout)


def test_a_forged_state_is_refused_and_a_real_install_serves_its_workspace(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        # Nothing installed yet: a mention is refused before it is recorded.
        _, refused = world.mention("anyone?", "C0ACME001", ACME)
        assert refused.status_code == 200 and "install" in refused.text.lower()

        _, cookie = world.install_page()
        forged = world.redirect(f"code={world.slack.code_for(Grant(ACME, 'Acme'))}&state=forged.state", "forged.state")
        assert forged.status_code == 401, forged.text
        mismatch = world.redirect("code=x&state=" + cookie, "another")
        assert mismatch.status_code == 400, mismatch.text
        assert world.slack.calls_to("oauth.v2.access") == []  # no code was exchanged for a forged state

        done_page = world.install(Grant(ACME, "Acme"))
        assert done_page.status_code == 200, done_page.text
        [access] = world.slack.calls_to("oauth.v2.access")
        assert access.ok and access.headers["authorization"].startswith("Basic ")  # client id and secret
        [token] = world.slack.tokens_of(ACME)
        with sqlite3.connect(world.db) as db:
            dump = "\n".join(db.iterdump())
        assert token not in dump and "team_id" in dump  # stored encrypted
        assert token not in world.bridge.logs()

        # The same state cannot be used twice.
        _, cookie = world.install_page()
        world.slack.install_next(Grant(BETA, "Beta"))
        assert world.redirect(f"code=x&state={cookie}", cookie).status_code in (200, 401)
        assert world.redirect(f"code=x&state={cookie}", cookie).status_code == 401

        agents = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        event, response = world.mention("hello acme", "C0ACME001", ACME)
        assert response.status_code == 200
        done(world, "C0ACME001", event["ts"])
        [post] = world.slack.posts("C0ACME001", event["ts"])
        assert post.token == token and post.args["username"] == "alice"
        assert any(f"/{agents['alice']}/" in s.path for s in world.letta.sends())
