"""A workspace that uninstalls the app and installs it again while one process serves it: the process's memory of
the removal (Workspaces._removed, its kit and token cache) keeps nothing from the new install, whose turns run and
whose Stop stops them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import ACME, bind, done
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import Grant

CHANNEL = "C0ACME001"


def test_a_workspace_installed_again_in_the_same_process_runs_and_stops_its_turns(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        agents = bind(world, ACME, CHANNEL, world.letta, ("alice",))
        world.slack.revoke(ACME)
        assert world.event("app_uninstalled", ACME).status_code == 200
        world.slack.wait_for(lambda: "workspace removed" in world.bridge.logs(), 10)
        assert world.install(Grant(ACME, "Acme")).status_code == 200  # the same process, the same workspace

        world.letta.set_delay(agents["alice"], 10.0)  # long enough for a loaded machine: the stop ends it first
        slow, _ = world.mention("a long one", CHANNEL, ACME)
        world.slack.wait_for(lambda: "eyes" in world.slack.reactions(CHANNEL, slow["ts"]), 10)
        stop = mention_event("stop", channel=CHANNEL, thread_ts=slow["ts"], team=ACME)
        assert world.bridge.post(world.envelope(event_body(stop, team_id=ACME), ACME)).status_code == 200
        world.slack.wait_for(lambda: "black_square_for_stop" in world.slack.reactions(CHANNEL, slow["ts"]), 10)
        assert any("Stopped by" in str(p.args.get("text")) for p in world.slack.posts(CHANNEL, slow["ts"]))

        world.letta.set_delay(agents["alice"], 0.0)
        quick, _ = world.mention("a quick one", CHANNEL, ACME)
        done(world, CHANNEL, quick["ts"])
        wanted = {slow["ts"]: "stopped", quick["ts"]: "done"}
        world.slack.wait_for(lambda: statuses(world.db) == wanted, 10)  # the turn's end is written after its ✅
        assert "status=uninstalled" not in world.bridge.logs()


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT message_ts, status FROM turns").fetchall())
