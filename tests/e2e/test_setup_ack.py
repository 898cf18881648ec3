"""`/letta setup` (OAuth mode) is acknowledged before the setup form is opened: Bolt runs with
`process_before_response`, so an `ack()` is sent only when the listener returns. Found by a review (revAZ): the
form was opened inside the listener, and a slow views.open (a rate limit the client waits out) kept the ack past
Slack's 3 seconds, so the admin saw Slack's `operation_timeout` for a command the bridge had taken."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.oauth import many_world
from tests.e2e.test_workspaces import BETA
from tests.fakes.slack import Grant


def test_setup_is_acknowledged_within_three_seconds_though_views_open_is_rate_limited(tmp_path: Path) -> None:
    with many_world(tmp_path) as world:
        world.install(Grant(BETA, "Beta", bot_user_id="U0BOTBETA", bot_id="B0BETA001"))
        # Slack's answer to a burst of views.open: 429 with Retry-After, which the client waits out.
        world.slack.fail_next("views.open", "ratelimited", headers={"retry-after": "4"})
        started = time.monotonic()
        ack, _url = world.command("setup", "C0BETA001", BETA)
        took = time.monotonic() - started
        assert ack.status_code == 200
        assert took < 3.0, f"acknowledged after {took:.1f}s"
        world.slack.wait_for(lambda: len(world.slack.calls_to("views.open")) == 2, 10)  # the form, once waited out
