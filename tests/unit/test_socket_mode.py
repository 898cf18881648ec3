"""bridge/slack/socket_mode.py: each envelope handled as app.py handles an HTTP request."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.logs import logged
from bridge.slack.socket_mode import SocketMode
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
