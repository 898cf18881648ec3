"""`/letta setup` (OAuth mode) is acknowledged before the setup form is opened: Bolt runs with
`process_before_response`, so an `ack()` is sent only when the listener returns. Found by a review (revAZ): the
form was opened inside the listener, and a slow views.open (a rate limit the client waits out) kept the ack past
Slack's 3 seconds, so the admin saw Slack's `operation_timeout` for a command the bridge had taken.

The form is opened with the command's trigger_id, which Slack honours for 3 seconds (the fake refuses it after,
`expired_trigger_id`): a rate limit's Retry-After that ends past that is not waited out, since the form could no
longer open, and the admin is told in words to run the command again instead of seeing nothing."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import BETA
from tests.fakes.slack import Grant

BUSY = "Slack was too busy to open the setup form just now: run `{command} setup` again."


def test_setup_is_acknowledged_at_once_and_a_rate_limit_past_the_trigger_is_told_not_waited_out(
    tmp_path: Path,
) -> None:
    """views.open answered 429 with Retry-After 4: the ack comes within 3 s, the call is not made again (the
    trigger would be dead by then) and the admin is told, ephemerally, to run the configured command again."""
    with many_world(tmp_path, SLACK_COMMAND="/crew") as world:
        world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001"))
        world.slack.fail_next("views.open", "ratelimited", headers={"retry-after": "4"})
        started = time.monotonic()
        ack, url = world.command("setup", "C0BETA001", BETA)
        took = time.monotonic() - started
        assert ack.status_code == 200
        assert took < 3.0, f"acknowledged after {took:.1f}s"
        assert world.answer(url, 3.0) == BUSY.format(command="/crew")
        told = next(p for p in world.slack.response_posts if p["_url"] == url)
        assert told.get("response_type") == "ephemeral"
        time.sleep(4.5)  # past the Retry-After: nothing was made again with the dead trigger
        assert len(world.slack.calls_to("views.open")) == 1


def test_setup_opens_its_form_after_a_rate_limit_short_enough_for_the_trigger(tmp_path: Path) -> None:
    """Retry-After 0: waited out (slack_sdk sleeps up to 1 s), the form opens with the same trigger while it lives,
    and nothing is said. Retry-After 1 (a 2 s wait at most) would leave 0.7 s of the trigger for users.info, the
    database read and the first views.open, too little on a loaded machine; 0 leaves 1.7 s, and a rate limit not
    waited out, or waited out past the trigger (which the fake then refuses), still fails here."""
    with many_world(tmp_path) as world:
        world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001"))
        world.slack.fail_next("views.open", "ratelimited", headers={"retry-after": "0"})
        ack, url = world.command("setup", "C0BETA001", BETA)
        assert ack.status_code == 200
        world.slack.wait_for(lambda: len(world.slack.calls_to("views.open")) == 2, 10)
        assert world.slack.calls_to("views.open")[-1].ok, world.slack.calls_to("views.open")[-1].response
        assert not any(p["_url"] == url for p in world.slack.response_posts)
