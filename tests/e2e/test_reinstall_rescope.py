"""revBW: a workspace that installs the app again to grant chat:write.customize (the scope `check` and the log
say it lacks) gets its agents' names as the replies' authors from then on, without a restart of the bridge."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import ACME, bind, done
from tests.fakes.slack import Grant
from tests.fakes.slack_reference import DEFAULT_SCOPES

CHANNEL = "C0ACME001"


def test_a_reinstall_granting_chat_write_customize_names_the_agents_again(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        world.slack.scopes = ",".join(s for s in DEFAULT_SCOPES.split(",") if s != "chat:write.customize")
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        bind(world, ACME, CHANNEL, world.letta, ("alice",))
        before, _ = world.mention("names?", CHANNEL, ACME)
        done(world, CHANNEL, before["ts"])
        [post] = world.slack.posts(CHANNEL, before["ts"])
        assert post.args["text"].startswith("*alice*") and not post.args.get("username")

        world.slack.scopes = DEFAULT_SCOPES  # the admin installs again, granting the scope (the manifest's)
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        after, _ = world.mention("names now?", CHANNEL, ACME)
        done(world, CHANNEL, after["ts"])
        [post] = world.slack.posts(CHANNEL, after["ts"])
        assert post.args.get("username") == "alice", post.args
        assert not post.args["text"].startswith("*alice*"), post.args
