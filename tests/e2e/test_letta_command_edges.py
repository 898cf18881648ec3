"""/letta as a configurer meets it at the edges (revAC): a connect from Slack keeps the channel's runner, an id
pasted at the end of a sentence, a direct message that cannot be connected, a setup form Slack would not open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.e2e.harness import run_cli
from tests.e2e.slash import slash_world


def test_connect_from_slack_keeps_the_runner_an_operator_set(tmp_path: Path) -> None:
    """0.11.x: the operator bound with --runner bridge so that Stop can stop a group (README). An admin's
    `/letta connect` of the same group (to refresh its names) saved it as `auto` (the server runner there)."""
    with slash_world(tmp_path, version="0.11.7") as sw:
        a, b = sw.letta.add_agent("alice"), sw.letta.add_agent("bob")
        group = sw.letta.add_group([a, b], manager_type="round_robin", description="Crew")
        channel = "C0RUNNER1"
        made = run_cli(sw.env, "channels", "connect", channel, group, "--runner", "bridge")
        assert made.returncode == 0, made.stderr
        said = sw.ask(f"connect {group}", channel)
        with sqlite3.connect(sw.db) as db:
            [runner] = db.execute("SELECT runner FROM bindings WHERE channel_id=?", (channel,)).fetchone()
        assert runner == "bridge", said
        assert "Runner: `bridge`" in said, said


def test_connect_in_a_direct_message_that_cannot_be_connected_offers_no_menu(tmp_path: Path) -> None:
    """Without DEFAULT_TARGET a DM cannot be connected: before, `/letta connect` there offered the whole menu and
    refused only the pick, leaving the menu up for another pick refused the same way."""
    with slash_world(tmp_path) as sw:
        sw.letta.add_group([sw.letta.add_agent("alice")], manager_type="round_robin", description="Crew")
        answer = sw.send("connect", "D0DMMENU1").wait()
        assert not answer.get("blocks") or "direct message cannot be connected" in str(answer), answer
        assert "direct message cannot be connected" in answer["text"], answer


def test_setup_resubmitted_without_the_hidden_key_keeps_it(tmp_path: Path) -> None:
    """The setup form never shows the saved key: before, submitting it again for the same server (the key field
    empty) was refused as 'the Letta server rejected the bridge's API key'."""
    from tests.e2e.oauth import many_world
    from tests.e2e.test_workspaces import BETA
    from tests.fakes.letta import FakeLetta
    from tests.fakes.slack import Grant

    with FakeLetta(version="0.16.8", api_key="sk-beta") as other, many_world(tmp_path) as world:
        world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001"))
        assert "update" in world.submit_setup(BETA, other.base_url, "sk-beta").text
        again = world.submit_setup(BETA, other.base_url, "")
        assert "update" in again.text, again.text


def test_setup_whose_form_slack_would_not_open_is_told(tmp_path: Path) -> None:
    """`/letta setup` is acknowledged empty, then views.open fails (the trigger expired, Slack's trouble): before,
    the admin saw nothing at all."""
    from tests.e2e.oauth import many_world
    from tests.e2e.test_workspaces import BETA
    from tests.fakes.slack import Grant

    with many_world(tmp_path) as world:
        world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001"))
        world.slack.fail_next("views.open", "expired_trigger_id")
        ack, url = world.command("setup", "C0BETA001", BETA)
        assert ack.status_code == 200
        said = world.answer(url)
        assert said == "Slack did not open the setup form in time: run `/letta setup` again."
        world.slack.fail_next("views.open", "view_too_large")
        ack, url = world.command("setup", "C0BETA001", BETA)
        said = world.answer(url)
        assert said == "Slack would not open the setup form (it said `view_too_large`): run `/letta setup` again."
