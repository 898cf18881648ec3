"""bridge/slack/socket_mode.py: each envelope handled as app.py handles an HTTP request."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.slack_response import SlackResponse

from bridge.logs import logged
from bridge.slack.socket_mode import SocketMode, not_opened
from bridge.store.locks import AckFirst


class App:
    """What Bolt's handler asks of the app: its client, and a dispatch (here noting what it ran under)."""

    def __init__(self, ack_first: AckFirst) -> None:
        self.client = AsyncWebClient(token="xoxb-test")
        self.ack_first = ack_first
        self.seen: list[tuple[object, bool]] = []

    async def async_dispatch(self, _request: Any) -> BoltResponse:
        self.seen.append((logged("request_id"), self.ack_first._answering > 0))
        return BoltResponse(status=200, body="")


def test_each_envelope_has_its_request_id_and_turns_give_way_until_it_is_acknowledged() -> None:
    async def main() -> tuple[list[tuple[object, bool]], list[Any], bool]:
        ack_first = AckFirst()
        app = App(ack_first)
        mode = SocketMode(cast(AsyncApp, app), "xapp-test", None, ack_first.answering)
        acks: list[Any] = []

        async def send(response: Any) -> None:
            acks.append((response, ack_first._answering > 0))

        mode.handler.client.send_socket_mode_response = send  # type: ignore[method-assign]
        for n in range(2):
            request = SocketModeRequest(type="events_api", envelope_id=f"e{n}", payload={"type": "event_callback"})
            await mode.handler.handle(mode.handler.client, request)
        await mode.close()
        return app.seen, acks, ack_first._answering > 0

    seen, acks, still = asyncio.run(main())
    assert [answering for _, answering in seen] == [True, True]
    ids = [rid for rid, _ in seen]
    assert all(isinstance(rid, str) and len(rid) == 12 for rid in ids) and ids[0] != ids[1]
    assert [(ack.envelope_id, answering) for ack, answering in acks] == [("e0", True), ("e1", True)]
    assert not still


class RefusingSlack(AsyncWebClient):
    """A Slack whose apps.connections.open fails on its side (internal_error), as the Web API answers it."""

    def __init__(self) -> None:
        super().__init__(token="xoxb-test")
        self.asked = 0

    async def apps_connections_open(self, **_kwargs: Any) -> Any:  # type: ignore[override]
        self.asked += 1
        response = SlackResponse(
            client=self, http_verb="POST", api_url="apps.connections.open", req_args={},
            data={"ok": False, "error": "internal_error"}, headers={}, status_code=200,
        )
        raise SlackApiError("The request to the Slack API failed.", response)


def test_a_new_url_slack_will_not_give_at_a_reconnection_is_one_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Slack asks for a new connection (`disconnect`) or the socket drops, and apps.connections.open then fails on
    Slack's side: one plain line each time, never a traceback or the SDK's multi-line error, and nothing raised
    into the client's loops (its monitor tries again while the socket is closed)."""

    async def main() -> int:
        app = App(AckFirst())
        slack = RefusingSlack()
        app.client = slack
        mode = SocketMode(cast(AsyncApp, app), "xapp-test", None, app.ack_first.answering)
        mode._failures.connected = True  # the first connection had opened
        client = mode.handler.client
        await client.run_message_listeners({"type": "disconnect", "reason": "refresh_requested"}, "{}")
        await client.connect_to_new_endpoint()  # as the client's monitor and receiver call it for a dropped socket
        await mode.close()
        return slack.asked

    with caplog.at_level(logging.INFO, logger="bridge.slack.socket_mode.client"):
        asked = asyncio.run(main())
    assert asked == 2
    lines = [r for r in caplog.records if r.name == "bridge.slack.socket_mode.client" and r.levelno >= logging.WARNING]
    said = "socket mode connection failed, trying again: Slack answered internal_error"
    assert [r.getMessage() for r in lines] == [said, said]
    assert all(r.exc_info is None for r in lines)


class ClosedSocket:
    """A WebSocket that dropped after an envelope arrived on it: writing to it fails as aiohttp's does."""

    closed = True

    async def send_str(self, _data: str) -> None:
        raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")


def test_an_envelope_whose_socket_dropped_before_its_ack_is_one_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The socket drops between an envelope's arrival and its ack: the event was handled (recorded), and Slack
    delivers it again on the next connection, where it is dropped as a duplicate. The log says so in one line
    instead of the client's warning and traceback."""

    async def main() -> list[tuple[object, bool]]:
        app = App(AckFirst())
        mode = SocketMode(cast(AsyncApp, app), "xapp-test", None, app.ack_first.answering)
        mode._failures.connected = True
        client = mode.handler.client
        client.current_session = ClosedSocket()  # type: ignore[assignment]
        request = {"type": "events_api", "envelope_id": "e-dropped", "payload": {"type": "event_callback"}}
        await client.run_message_listeners(request, "{}")
        client.current_session = None
        await mode.close()
        return app.seen

    with caplog.at_level(logging.INFO, logger="bridge.slack.socket_mode.client"):
        seen = asyncio.run(main())
    assert len(seen) == 1, "the envelope was handled"
    records = [r for r in caplog.records if r.name == "bridge.slack.socket_mode.client"]
    assert all(r.exc_info is None for r in records), [r.getMessage() for r in records]
    said = [r for r in records if "e-dropped" in r.getMessage()]
    assert [r.getMessage() for r in said] == [
        "socket mode connection closed before envelope e-dropped was acknowledged: Slack delivers it again"
    ]


def test_an_app_level_token_without_connections_write_is_told_to_get_one_with_it() -> None:
    """An app-level token made with another scope (authorizations:read, app_configurations:write): Slack answers
    missing_scope. Copying the same token again cannot help: the sentence says which scope a new one needs."""
    said = not_opened("missing_scope")
    assert said.startswith("Slack refused SLACK_APP_TOKEN (missing_scope): it lacks the scope connections:write")
    assert "Generate" in said and "no more detail" not in said and "Copy the current token" not in said
