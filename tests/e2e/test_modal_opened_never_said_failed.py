"""A form Slack may have opened is never said to have failed (second reader secKJ on e1992cb). Slack exchanges a
trigger_id for one view (a second views.open with it answers `exchanged_trigger_id`, which the fake does too): a
views.open whose answer was lost (the connection dropped) was made again by the client's connection retry, refused
as exchanged, and the presser told "Slack would not open the Deny form" while it was open in front of them; one
Slack took in time but answered slowly was cut off at the trigger's end plus 5 s and said to be "too busy". Now
views.open is never made again after a send whose outcome is unknown, its answer is waited for as long as the
client waits for any, and an outcome Slack did not confirm is said as such."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.approval_rig import ASKER, Rig
from tests.e2e.oauth import many_world
from tests.e2e.test_deny_while_slack_is_slow import _card, rig  # noqa: F401  (fixture)
from tests.e2e.test_workspaces import BETA
from tests.fakes.letta import FakeLetta
from tests.fakes.slack import Grant

UNCONFIRMED = "Slack did not confirm the Deny form opened: if it is not showing, press Deny again."


def _told(world: Rig[FakeLetta]) -> list[str]:
    return [str(e["text"]) for e in world.slack.ephemerals if e.get("user") == ASKER]


def test_a_deny_form_whose_answer_was_lost_is_opened_once_and_said_unconfirmed_not_failed(
    rig: Rig[FakeLetta],  # noqa: F811
) -> None:
    """views.open opens the form and its connection drops before the answer: it is not made again with the spent
    trigger, and the presser is told, in the card's thread, that Slack did not confirm it, not that it failed."""
    root, card = _card(rig)
    rig.slack.land_then_drop_next("views.open")
    rig.press(card, "letta_deny_tool", ASKER)
    rig.slack.wait_for(lambda: rig.told(ASKER, UNCONFIRMED), 5.0)
    time.sleep(1.5)  # past the connection retry's pause: nothing was made again
    assert [c.ok for c in rig.slack.calls_to("views.open")] == [True]  # the form is open in front of the presser
    assert _told(rig) == [UNCONFIRMED]
    [told] = [e for e in rig.slack.ephemerals if e.get("user") == ASKER]
    assert (told.get("channel"), told.get("thread_ts")) == (rig.channel, root["ts"])


def test_a_deny_form_slack_opened_but_answered_slowly_is_not_said_to_have_failed(
    rig: Rig[FakeLetta],  # noqa: F811
) -> None:
    """views.open taken within the trigger (the form opens) but answered after 8 s: its answer is waited for, and
    the presser, who sees the form, is told nothing."""
    _root, card = _card(rig)
    rig.slack.answer_delays["views.open"] = 8.0
    rig.press(card, "letta_deny_tool", ASKER)
    rig.slack.wait_for(lambda: len(rig.slack.calls_to("views.open")) == 1, 10)
    assert rig.slack.calls_to("views.open")[0].ok  # Slack took it: the form is open
    time.sleep(9.0)  # past the answer
    assert _told(rig) == []
    assert len(rig.slack.calls_to("views.open")) == 1


def test_a_setup_form_whose_answer_was_lost_is_opened_once_and_said_unconfirmed_naming_the_command(
    tmp_path: Path,
) -> None:
    """`/crew setup` (SLACK_COMMAND): views.open opens the form and its answer is lost; the admin is told, only
    them, that Slack did not confirm it, with the configured command to run if it is not showing."""
    with many_world(tmp_path, SLACK_COMMAND="/crew") as world:
        world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001"))
        world.slack.land_then_drop_next("views.open")
        ack, url = world.command("setup", "C0BETA001", BETA)
        assert ack.status_code == 200
        said = world.answer(url, 5.0)
        assert said == "Slack did not confirm the setup form opened: if it is not showing, run `/crew setup` again."
        told = next(p for p in world.slack.response_posts if p["_url"] == url)
        assert told.get("response_type") == "ephemeral"
        time.sleep(1.5)  # past the connection retry's pause: nothing was made again
        assert [c.ok for c in world.slack.calls_to("views.open")] == [True]
