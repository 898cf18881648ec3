"""Socket Mode for the fake Slack: apps.connections.open, the WebSocket with its hello, envelopes pushed to
every connected client and their acks kept, Slack's `disconnect` and a dropped connection."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.slack_reference import loads_dict


class SlackSocketMode:
    """Mixed into FakeSlack, which provides app_id, base_url, _lock, _loop, _messages and _find."""

    app_id: str
    base_url: str
    _lock: threading.RLock
    _loop: asyncio.AbstractEventLoop | None
    _messages: dict[str, list[dict[str, Any]]]

    def _init_sockets(self) -> None:
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_sent: list[dict[str, Any]] = []
        self._sockets: set[web.WebSocketResponse] = set()
        # Where apps.connections.open sends the client; None: this fake's own /ws. Real Slack's URL is on another
        # host (wss-primary.slack.com) than its Web API: a test points this at a port nobody listens on to play
        # that host unreachable from here (a firewall or proxy that lets slack.com through, not WebSockets).
        self.socket_url: str | None = None

    def socket_connected(self) -> bool:
        """True while at least one Socket Mode client holds an open WebSocket."""
        with self._lock:
            return any(not ws.closed for ws in self._sockets)

    def open_sockets(self) -> set[int]:
        """Ids of the Socket Mode WebSockets open now: a test waits for one not among those it saw before."""
        with self._lock:
            return {id(ws) for ws in self._sockets if not ws.closed}

    def send_socket_event(
        self, payload: dict[str, Any], envelope_type: str = "events_api", retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        """Push one envelope to every connected socket client; returns its envelope_id. Slack delivers an event
        it has no acknowledgement for again, in a new envelope with `retry_attempt` and `retry_reason` set."""
        if self._loop is None:
            raise RuntimeError("FakeSlack is not started")
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": envelope_type,
            "accepts_response_payload": envelope_type != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        sent = asyncio.run_coroutine_threadsafe(self._broadcast(envelope), self._loop).result(10)
        if not sent:
            raise AssertionError("send_socket_event: no Socket Mode client is connected")
        if payload.get("type") == "event_callback" and isinstance(payload.get("event"), dict):
            self.remember_event(payload["event"])
        return str(envelope["envelope_id"])

    def send_socket_disconnect(self, reason: str = "refresh_requested", close_after: float = 1.0) -> None:
        """Slack's `disconnect` message (reason `warning` ahead of a close, `refresh_requested` when it wants the
        client on a new connection): the client is to open a new one, and Slack then closes the connection it
        told to go whether or not the client did (here `close_after` seconds later)."""
        if self._loop is None:
            raise RuntimeError("FakeSlack is not started")
        with self._lock:
            told = [ws for ws in self._sockets if not ws.closed]
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        if not asyncio.run_coroutine_threadsafe(self._broadcast(message), self._loop).result(10):
            raise AssertionError("send_socket_disconnect: no Socket Mode client is connected")

        async def close_told() -> None:
            await asyncio.sleep(close_after)
            for ws in told:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake slack refreshed the connection")

        asyncio.run_coroutine_threadsafe(close_told(), self._loop)

    def drop_sockets(self) -> None:
        """Close every Socket Mode connection from Slack's side, as a socket that drops (or a host restarting) does;
        the client is to open a new one."""
        if self._loop is None:
            raise RuntimeError("FakeSlack is not started")
        asyncio.run_coroutine_threadsafe(self._close_sockets(), self._loop).result(10)

    async def _close_sockets(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for ws in sockets:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake slack closed the connection")

    def remember_event(self, event: dict[str, Any]) -> None:
        """Store a user ``message``/``app_mention`` event as channel history (conversations.replies sees it).

        send_socket_event does this itself; call it for events delivered over HTTP.  Same ts = stored once.
        """
        channel, ts = event.get("channel"), event.get("ts")
        if event.get("type") not in ("message", "app_mention") or event.get("subtype") or not channel or not ts:
            return
        msg = {k: copy.deepcopy(v) for k, v in event.items() if k not in ("channel", "event_ts", "channel_type")}
        msg["type"] = "message"
        with self._lock:
            if self._find(channel, ts) is None:
                self._messages.setdefault(channel, []).append(msg)

    async def _broadcast(self, envelope: dict[str, Any]) -> int:
        with self._lock:
            sockets = [ws for ws in self._sockets if not ws.closed]
            self.socket_sent.append(envelope)
        for ws in sockets:
            await ws.send_str(json.dumps(envelope))
        return len(sockets)

    async def _handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)  # autoping answers the SDK's pings
        await ws.prepare(request)
        debug_info = {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060}
        hello = {"type": "hello", "num_connections": 1, "debug_info": debug_info}
        hello["connection_info"] = {"app_id": self.app_id}
        await ws.send_json(hello)  # before registering, so no envelope can overtake the hello
        with self._lock:
            self._sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    parsed = loads_dict(msg.data)
                    with self._lock:
                        self.socket_acks.append({"_raw": msg.data} if parsed is None else parsed)
        finally:
            with self._lock:
                self._sockets.discard(ws)
        return ws

    def _api_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any] | str:
        return {"ok": True, "url": self.socket_url or self.base_url.replace("http://", "ws://") + "ws"}
