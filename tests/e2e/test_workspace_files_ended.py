"""A turn ended because its workspace removed the app (OAuth mode) drops its files' bytes at once, as any turn's
end does (docs/files.md); before, they stayed until retention deleted the turn (never, with retention off)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.e2e.oauth import Many, many_world
from tests.e2e.test_files import PNG
from tests.e2e.test_workspaces import ACME, bind
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import Grant


def _share(world: Many, channel: str, text: str, files: list[dict[str, object]]) -> str:
    event = mention_event(text, channel=channel, team=ACME)
    event["files"] = files
    assert world.bridge.post(world.envelope(event_body(event, team_id=ACME), ACME)).status_code == 200
    return str(event["ts"])


def _kept(world: Many, ts: str) -> tuple[str, list[object]]:
    with sqlite3.connect(world.db) as db:
        [(status,)] = db.execute("SELECT status FROM turns WHERE message_ts=?", (ts,)).fetchall()
        return status, db.execute("SELECT turn_id FROM turn_attachments").fetchall()


@pytest.mark.parametrize("how", ["tokens revoked", "workspaces remove"])
def test_an_image_s_bytes_go_when_the_workspace_removes_the_app_mid_turn(tmp_path: Path, how: str) -> None:
    with many_world(tmp_path, UNINSTALLED_BINDINGS="keep") as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        agents = bind(world, ACME, "C0ACME001", world.letta, ("alice",))
        world.letta.set_delay(agents["alice"], 5.0)
        ts = _share(world, "C0ACME001", "look at this", [world.slack.add_file("a.png", PNG, "image/png")])
        world.slack.wait_for(lambda: len(world.letta.sends()) >= 1, 10)  # the image was prepared and sent
        assert _kept(world, ts)[1], "the turn keeps its image while it runs"
        if how == "tokens revoked":
            world.slack.revoke(ACME)
            assert world.event("tokens_revoked", ACME).status_code == 200
        else:
            assert world.cli("workspaces", "remove", ACME).returncode == 0
        world.slack.wait_for(lambda: _kept(world, ts) == ("uninstalled", []), 15)
