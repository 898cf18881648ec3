"""`channels connect|list|disconnect` from the host, about the right workspace (cli_ids.py): --team checked and
written as Slack writes it; in OAuth mode, a workspace's agents looked up on its own Letta server (`/letta
setup`); and a workspace moved to another server told which channels still name the old one's agents."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.harness import run_cli
from tests.e2e.oauth import many_world
from tests.e2e.slash import slash_world
from tests.e2e.test_workspaces import BETA, bind
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import Grant

KEY = "sk-beta-letta"


def test_cli_team_is_written_as_slack_writes_it_and_another_workspace_is_refused(tmp_path: Path) -> None:
    """Before, `--team t0123abcd` saved a binding nothing would ever read (Slack says T0123ABCD): `channels
    list` showed it, `/letta status` and `channels disconnect` said the channel was not connected."""
    with slash_world(tmp_path) as sw:
        alice = sw.letta.add_agent("alice")
        sw.slack.add_channel("C0TEAMCASE", "teamcase")
        made = run_cli(sw.env, "channels", "connect", "C0TEAMCASE", alice, "--team", "t0123abcd")
        assert made.returncode == 0 and "in workspace T0123ABCD" in made.stdout, made.stderr
        status = sw.ask("status", "C0TEAMCASE")
        assert "not connected" not in status and "alice" in status, status
        other = run_cli(sw.env, "channels", "connect", "C0OTHER01", alice, "--team", "T0FFFFFFF")
        assert other.returncode == 2 and "is not the workspace this bridge serves" in other.stderr, other.stderr
        shape = run_cli(sw.env, "channels", "connect", "C0OTHER01", alice, "--team", "acme")
        assert shape.returncode == 2 and "is not a Slack workspace id" in shape.stderr, shape.stderr
        assert sw.binding("C0OTHER01") is None and sw.binding("C0OTHER01", "T0FFFFFFF") is None
        gone = run_cli(sw.env, "channels", "disconnect", "C0TEAMCASE", "--team", "t0123abcd")
        assert gone.returncode == 0, gone.stderr
        assert sw.binding("C0TEAMCASE") is None


def test_in_oauth_mode_the_cli_looks_agents_up_on_the_workspaces_own_server(tmp_path: Path) -> None:
    """Before, an agent on the workspace's own server was refused ("not found on the Letta server at <the
    default>"), and one on the default server only was saved, and every mention there failed."""
    other = FakeLetta(version="0.16.8", api_key=KEY)
    other.start()
    try:
        with many_world(tmp_path) as world:
            assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
            world.command("setup", "C0BETA001", BETA)
            assert "update" in world.submit_setup(BETA, other.base_url, KEY).text
            bruno, dora = other.add_agent("bruno"), world.letta.add_agent("dora")
            on_own = world.cli("channels", "connect", "C0BETA009", bruno, "--team", BETA)
            assert on_own.returncode == 0 and "connected C0BETA009" in on_own.stdout, on_own.stderr
            on_default = world.cli("channels", "connect", "C0BETA010", dora, "--team", BETA)
            assert on_default.returncode == 1 and other.base_url in on_default.stderr, on_default.stdout
            nobody = world.cli("channels", "connect", "C0BETA011", dora, "--team", "T0NOTHERE")
            assert nobody.returncode == 1 and "has not installed the app" in nobody.stderr, nobody.stderr
            untold = world.cli("channels", "connect", "C0BETA011", dora)
            assert untold.returncode == 2 and "--team" in untold.stderr, untold.stderr
            listed = world.cli("channels", "list")
            assert listed.returncode == 0 and "C0BETA009" in listed.stdout and "C0BETA010" not in listed.stdout
    finally:
        other.stop()


def test_a_workspace_moved_to_another_server_is_told_its_channels_need_connecting_again(tmp_path: Path) -> None:
    other = FakeLetta(version="0.16.8", api_key=KEY)
    other.start()
    try:
        with many_world(tmp_path) as world:
            assert world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001")).status_code == 200
            bind(world, BETA, "C0BETA001", world.letta, ("alice",))
            bind(world, BETA, "C0BETA002", world.letta, ("bob",))
            world.command("setup", "C0BETA001", BETA)
            moved = world.submit_setup(BETA, other.base_url, KEY)
            assert "2 channels are still connected to the previous server" in moved.text, moved.text
            again = world.submit_setup(BETA, other.base_url + "/", KEY)  # the same server, set again
            assert "update" in again.text and "still connected" not in again.text, again.text
    finally:
        other.stop()
