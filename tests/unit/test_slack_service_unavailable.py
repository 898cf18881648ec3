"""Slack's `service_unavailable`, said in a body with HTTP 200 (as workspace_authorize.py and socket_mode.py
already count it), is Slack down: a post it fails waits for Slack and runs again rather than ending the turn
failed (second reader secKO of c239ae3). `request_timeout` stays a refusal of that message."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.failures import SlackPostError
from bridge.slack.post import Part, SlackPoster
from tests.fakes.slack import FakeSlack


def failed_post(error: str) -> SlackPostError:
    """The SlackPostError of a post Slack answers `error` to (HTTP 200), every time."""
    with FakeSlack() as fake:
        fake.add_channel("C1", "general")
        root = fake.add_message("C1", "hi")
        poster = SlackPoster(AsyncWebClient(token=fake.bot_token, base_url=fake.api_url))
        fake.fail_next("chat.postMessage", error=error, status=200, times=50)
        with pytest.raises(SlackPostError) as raised:
            asyncio.run(poster.post("C1", root, Part("alice says hi", None)))
        return raised.value


def test_slack_saying_service_unavailable_counts_as_slack_down() -> None:
    """Before, the turn ended failed with ⚠️ and the reply was kept only in the outbox."""
    failure = failed_post("service_unavailable")
    assert failure.unavailable and not failure.permanent, failure


def test_a_request_timeout_stays_a_refusal_not_slack_down() -> None:
    failure = failed_post("request_timeout")
    assert not failure.unavailable, failure
