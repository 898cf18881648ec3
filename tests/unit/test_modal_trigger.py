"""A modal opened with an interaction's trigger_id (bridge/slack/modals.py), which Slack honours for 3 seconds and
the fake refuses after (`expired_trigger_id`): a rate limit's Retry-After is waited out only when the call made
again still comes while the trigger lives; otherwise the person is told at once, in words, to try again."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.state import RetryState

from bridge.slack.metered import CountedRateLimits, MeteredSlackClient, RepeatSafeRetry
from bridge.slack.modals import TRIGGER_ENDS, open_modal
from tests.fakes.slack import FakeSlack

VIEW = {"type": "modal", "title": {"type": "plain_text", "text": "Letta server"}, "blocks": []}
AGAIN = "run `/crew setup` again"


def _open(slack: FakeSlack, arrived: float) -> str | None:
    client = MeteredSlackClient(token=slack.bot_token, base_url=slack.api_url)
    client.retry_handlers.append(CountedRateLimits(client, max_retry_count=3))
    return asyncio.run(open_modal(client, slack.trigger_id(), VIEW, arrived, "the setup form", AGAIN))


def test_a_rate_limit_ending_past_the_trigger_is_said_at_once_and_not_waited_out() -> None:
    """Retry-After 4 outlives the trigger: one views.open, and the words come back without the wait."""
    with FakeSlack() as slack:
        slack.fail_next("views.open", "ratelimited", headers={"retry-after": "4"})
        started = time.monotonic()
        said = _open(slack, started)
        assert time.monotonic() - started < 1.0
        assert said == "Slack was too busy to open the setup form just now: run `/crew setup` again."
        assert len(slack.calls_to("views.open")) == 1


def test_a_rate_limit_ending_while_the_trigger_lives_is_waited_out_and_the_modal_opens() -> None:
    """Retry-After 0: made again with the same trigger, which still lives, and nothing is said."""
    with FakeSlack() as slack:
        slack.fail_next("views.open", "ratelimited", headers={"retry-after": "0"})
        assert _open(slack, time.monotonic()) is None
        assert [c.ok for c in slack.calls_to("views.open")] == [False, True]


def test_a_trigger_already_spent_is_not_sent_and_said_late() -> None:
    """The interaction came 3 s ago: Slack would refuse the trigger, so views.open is not made."""
    with FakeSlack() as slack:
        said = _open(slack, time.monotonic() - 3.0)
        assert said == "Slack did not open the setup form in time: run `/crew setup` again."
        assert slack.calls_to("views.open") == []


def test_a_refusal_is_said_with_slacks_words_for_it() -> None:
    """A refusal that will not pass (the view itself) names Slack's error after the words."""
    with FakeSlack() as slack:
        slack.fail_next("views.open", "view_too_large")
        said = _open(slack, time.monotonic())
        assert said == "Slack would not open the setup form (it said `view_too_large`): run `/crew setup` again."


def test_an_exchanged_trigger_means_the_form_opened_and_nothing_is_said() -> None:
    """`exchanged_trigger_id`: Slack already opened a view with this trigger, so the form is showing."""
    with FakeSlack() as slack:
        slack.fail_next("views.open", "exchanged_trigger_id")
        assert _open(slack, time.monotonic()) is None


def test_slacks_trouble_is_said_unconfirmed_not_as_a_failure_and_not_made_again() -> None:
    """A 500 (the form opened or not) and internal_error ("may have succeeded in part"): the person is told Slack
    did not confirm it, with what to do if it is not showing, and the trigger is not spent on a second call."""
    unconfirmed = "Slack did not confirm the setup form opened: if it is not showing, run `/crew setup` again."
    with FakeSlack() as slack:
        slack.land_then_fail_next("views.open")
        assert _open(slack, time.monotonic()) == unconfirmed
        assert len(slack.calls_to("views.open")) == 1
        slack.fail_next("views.open", "internal_error")
        assert _open(slack, time.monotonic()) == unconfirmed
        assert len(slack.calls_to("views.open")) == 2


def test_a_trigger_used_again_is_refused_as_exchanged_by_the_fake() -> None:
    """The fake exchanges a trigger for one view, as Slack does: the second views.open with it is refused."""
    with FakeSlack() as slack:
        client = MeteredSlackClient(token=slack.bot_token, base_url=slack.api_url)
        trigger = slack.trigger_id()

        async def twice() -> None:
            await client.views_open(trigger_id=trigger, view=VIEW)
            await client.views_open(trigger_id=trigger, view=VIEW)

        with pytest.raises(SlackApiError) as refused:
            asyncio.run(twice())
        assert refused.value.response["error"] == "exchanged_trigger_id"


def test_a_connection_retry_whose_longest_pause_would_end_past_the_trigger_is_not_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A views.open whose connection never opened is made again only within its trigger; slack_sdk sleeps 0.5 s plus
    a jitter of up to 1 s it draws afresh: with 1.2 s of the trigger left, the call is not made again, whatever a
    draw of the jitter says (here 0, which once let it through)."""
    monkeypatch.setattr(jitter.random, "random", lambda: 0.0)
    request = HttpRequest(method="POST", url="https://slack.com/api/views.open", headers={})
    ends = TRIGGER_ENDS.set(time.monotonic() + 1.2)
    try:
        again = asyncio.run(
            RepeatSafeRetry().can_retry_async(state=RetryState(), request=request, error=_refused_connection())
        )
    finally:
        TRIGGER_ENDS.reset(ends)
    assert again is False


def _refused_connection() -> aiohttp.ClientConnectorError:
    """What aiohttp raises when Slack's address refuses the connection: nothing reached Slack."""
    return aiohttp.ClientConnectorError(
        ConnectionKey("slack.com", 443, True, True, None, None, None), OSError(111, "Connection refused")
    )


def test_a_views_open_that_could_not_connect_is_said_as_slack_unreached_not_unconfirmed() -> None:
    """A connection to Slack that never opened sent nothing, so the form certainly did not open: the person is told
    Slack could not be reached, not that Slack did not confirm the form opened."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/api/"  # closed below: nothing listens there
    client = MeteredSlackClient(token="xoxb-test", base_url=closed)
    said = asyncio.run(open_modal(client, "1.2.trigger", VIEW, time.monotonic(), "the setup form", AGAIN))
    assert said == "Slack could not be reached to open the setup form just now: run `/crew setup` again."


def test_a_views_open_that_could_not_connect_is_made_again_within_the_trigger_but_a_dropped_one_is_not() -> None:
    """A connect failure sent nothing, so a second views.open cannot meet a spent trigger: it is made while the
    trigger lives. A connection dropped after the request went may have opened the form: never made again."""
    request = HttpRequest(method="POST", url="https://slack.com/api/views.open", headers={})
    ends = TRIGGER_ENDS.set(time.monotonic() + 2.7)
    try:
        retry = RepeatSafeRetry()
        unsent = asyncio.run(retry.can_retry_async(state=RetryState(), request=request, error=_refused_connection()))
        dropped = asyncio.run(
            retry.can_retry_async(state=RetryState(), request=request, error=aiohttp.ServerDisconnectedError())
        )
    finally:
        TRIGGER_ENDS.reset(ends)
    assert unsent is True and dropped is False
