"""bridge/slack/socket_mode.py: each connection's opening bounded (`Client.handshake_seconds`), an open socket
not cut by that bound."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from typing import cast

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.socket_mode import SocketMode, SocketModeError
from bridge.store.locks import AckFirst
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import FakeSlack
from tests.unit.test_socket_mode import App

CLIENT_LOG = "bridge.slack.socket_mode.client"


@pytest.fixture
def silent() -> Iterator[str]:
    """A WebSocket URL whose host takes the TCP connection and never answers (a middlebox swallowing them)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
        yield f"ws://127.0.0.1:{listening.getsockname()[1]}/link/?ticket=silent-ticket"


def socket_mode(slack: FakeSlack, handshake: float) -> tuple[App, SocketMode]:
    app = App(AckFirst())
    app.client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    mode = SocketMode(cast(AsyncApp, app), slack.app_token, None, app.ack_first.answering)
    mode.handler.client.handshake_seconds = handshake
    return app, mode


def test_a_websocket_host_that_never_answers_ends_the_start_in_words_within_the_bound(silent: str) -> None:
    """Slack's Web API answers, its WebSocket host never does: `open` waited aiohttp's default 300 s, silent."""

    async def main(slack: FakeSlack) -> str:
        _, mode = socket_mode(slack, handshake=1)
        try:
            with pytest.raises(SocketModeError) as raised:
                await asyncio.wait_for(mode.open(), 10)
        finally:
            await mode.close()
        return str(raised.value)

    with FakeSlack() as slack:
        slack.socket_url = silent
        said = asyncio.run(main(slack))
    assert said.startswith("cannot open the Socket Mode connection to 127.0.0.1:"), said
    assert "no answer within 1 s" in said and "proxy or firewall" in said and "silent-ticket" not in said, said


def test_a_reconnection_to_a_host_that_never_answers_is_one_line_within_the_bound(
    silent: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The socket drops and the next URL names a host that never answers: the client waited 300 s on it."""

    async def main(slack: FakeSlack) -> None:
        _, mode = socket_mode(slack, handshake=1)
        try:
            await asyncio.wait_for(mode.open(), 10)
            slack.socket_url = silent
            await asyncio.to_thread(slack.drop_sockets)
            for _ in range(100):
                if any("trying again" in r.getMessage() for r in caplog.records if r.name == CLIENT_LOG):
                    break
                await asyncio.sleep(0.05)
        finally:
            await mode.close()

    with FakeSlack() as slack, caplog.at_level(logging.INFO, logger=CLIENT_LOG):
        asyncio.run(main(slack))
    said = [r.getMessage() for r in caplog.records if r.name == CLIENT_LOG and "trying again" in r.getMessage()]
    assert said and said[0] == "socket mode connection failed, trying again: no answer in time", said


def test_an_open_socket_outlives_the_bound_on_its_opening() -> None:
    """The bound is on the handshake only: a connection open longer than it still receives envelopes."""

    async def main(slack: FakeSlack) -> int:
        app, mode = socket_mode(slack, handshake=1)
        try:
            await asyncio.wait_for(mode.open(), 10)
            for _ in range(100):  # the client's handshake ends before the fake registers the socket (after its hello)
                if opened := slack.open_sockets():
                    break
                await asyncio.sleep(0.05)
            assert opened, "a socket opened"
            await asyncio.sleep(2.5)
            assert slack.open_sockets() == opened, "the same socket, still open"
            event = json.loads(event_body(mention_event("still there?", channel="C0HANDSHK")))
            await asyncio.to_thread(slack.send_socket_event, event)
            for _ in range(100):
                if app.seen:
                    break
                await asyncio.sleep(0.05)
        finally:
            await mode.close()
        return len(app.seen)

    with FakeSlack() as slack:
        assert asyncio.run(main(slack)) == 1
        assert len(slack.calls_to("apps.connections.open")) == 1, "never reconnected"
