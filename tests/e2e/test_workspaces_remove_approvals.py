"""`workspaces remove` is documented "as an uninstall" (docs/workspaces.md, From the host). An uninstall
while a turn waits on a tool approval card denies that request on Letta (the agent takes messages again at once);
`workspaces remove` leaves it pending, so another workspace bound to the same agent is refused by Letta."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.harness import inbox_drained
from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import ACME, BETA, done
from tests.fakes.slack import Grant

SHOUT = ("shout", '{"message": "finn says hi"}')


def test_workspaces_remove_while_a_card_waits_leaves_no_agent_blocked(tmp_path: Path) -> None:
    with many_world(tmp_path, LETTA_CONVERSATIONS="false") as world:
        assert world.install(Grant(ACME, "Acme")).status_code == 200
        assert world.install(Grant(BETA, "Beta")).status_code == 200
        finn = world.letta.add_agent("finn")
        for team, channel in ((ACME, "C0ACME001"), (BETA, "C0BETA002")):
            world.slack.add_channel(channel, f"chan-{channel.lower()}")
            _, url = world.command(f"connect {finn}", channel, team)
            assert "Connected this channel" in world.answer(url), world.answer(url)
        world.letta.ask_approval(finn, SHOUT)
        root, _ = world.mention("please use tool shout", "C0ACME001", ACME)
        world.slack.wait_for(
            lambda: any("approve" in str(p.args.get("blocks")) for p in world.slack.posts("C0ACME001", root["ts"])),
            10,
        )
        removed = world.cli("workspaces", "remove", ACME)  # the operator, from the host: "as an uninstall"
        assert removed.returncode == 0, removed.stderr
        time.sleep(12.0)  # past the serving process's token cache (TOKEN_CACHE_SECONDS)

        later, _ = world.mention("hello finn", "C0BETA002", BETA)
        inbox_drained(world.db)
        done(world, "C0BETA002", later["ts"])
        said = [str(p.args.get("text")) for p in world.slack.posts("C0BETA002", later["ts"])]
        decisions = world.letta.approval_decisions()
        assert len(decisions) == 1, (decisions, said)
        assert decisions[0]["approvals"][0]["approve"] is False, decisions
        assert decisions[0]["approvals"][0]["reason"] == "the app was removed from the workspace", decisions
