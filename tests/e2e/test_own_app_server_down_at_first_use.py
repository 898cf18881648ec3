"""A workspace's own App Server (set with /letta setup as http://…) that is down when this process first uses it:
its kind cannot be told, so its mentions fail as Letta unreachable (said in the log) and it is asked again, and the
workspace's mentions are answered once it is back, without a restart (taken over from review FF)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.oauth import Many, many_world
from tests.e2e.test_workspaces import BETA, done
from tests.e2e.test_workspaces_app_server import beta_on_its_app_server
from tests.fakes.appserver import FakeAppServer

CHANNEL = "C0BETA001"  # where beta_on_its_app_server connects ari and bea


@contextmanager
def down_at_first_use(tmp_path: Path) -> Iterator[Many]:
    """Beta's own App Server, written http://, down when the restarted bridge first uses it: the mention then
    fails as Letta unreachable, in its usual words, and the server is back once this yields."""
    app = FakeAppServer(scale=0.001)
    app.start()
    try:
        with many_world(tmp_path) as world:
            beta_on_its_app_server(world, app)
            world.bridge.stop()
            app.restart(down=6.0)
            world.bridge.restart()
            first, _ = world.mention("anyone there?", CHANNEL, BETA)
            done(world, CHANNEL, first["ts"], timeout=20)
            said = " ".join(p.args["text"] for p in world.slack.posts(CHANNEL, first["ts"]))
            # Letta's 404 words, not a "404" inside the fake's random port (127.0.0.1:40491 failed a CI run).
            assert "couldn't reach the Letta server" in said, said
            assert "(404)" not in said and "does not know" not in said, said
            time.sleep(7.0)  # the server is back
            yield world
    finally:
        app.stop()


def answered(world: Many) -> None:
    again, _ = world.mention("hello again", CHANNEL, BETA)
    done(world, CHANNEL, again["ts"], timeout=20)
    said = [(p.args.get("username"), p.args["text"]) for p in world.slack.posts(CHANNEL, again["ts"])]
    assert said == [("ari", "ari says hi"), ("bea", "bea says hi")], (said, world.bridge.logs()[-3000:])


def test_an_own_app_server_down_at_first_use_answers_once_it_is_back(tmp_path: Path) -> None:
    """The mention after the server is back is answered by each agent, and the log said the kind was not told."""
    with down_at_first_use(tmp_path) as world:
        answered(world)
        logs = world.bridge.logs()
        assert "could not be told: it did not tell it (" in logs, logs[-3000:]
        assert "answers now: an App Server, its client made" in logs, logs[-3000:]
