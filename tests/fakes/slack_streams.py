"""Streaming messages for the fake Slack (chat.startStream / appendStream / stopStream): the text grown by
markdown_text chunks, each task's task_update chunks kept (slack_stream.py checks them)."""

from __future__ import annotations

import threading
from typing import Any

from tests.fakes.slack_reference import chunk_text, jsonish
from tests.fakes.slack_stream import check_chunks


class SlackStreams:
    """Mixed into FakeSlack, which provides bot_id, app_id, scopes, _lock, _next_ts, _find and _store."""

    bot_id: str
    app_id: str
    scopes: str
    given_blocks: set[tuple[str, str]]
    _lock: threading.RLock

    def _init_streams(self) -> None:
        self._streaming: set[tuple[str, str]] = set()
        # Each stream's tasks: (channel, ts) -> task id -> its task_update chunks in order (slack_stream.py).
        self.stream_tasks: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}

    def open_streams(self) -> list[tuple[str, str]]:
        """(channel, ts) of the streaming messages not stopped yet."""
        with self._lock:
            return sorted(self._streaming)

    def _api_chat_startStream(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel = str(args.get("channel") or "")
        if not channel:
            return "channel_not_found"
        if channel[:1] in ("C", "G"):
            if not args.get("recipient_user_id"):
                return "missing_recipient_user_id"
            if not args.get("recipient_team_id"):
                return "missing_recipient_team_id"
        text = chunk_text(args)
        tasks: dict[str, list[dict[str, Any]]] = {}
        if text is None or check_chunks(jsonish(args.get("chunks")), tasks):
            return "invalid_chunks"
        if args.get("task_display_mode") not in (None, "timeline", "plan"):
            return "invalid_arguments"
        ts = self._next_ts()
        self.stream_tasks[(channel, ts)] = tasks
        msg = {"text": text, "bot_id": self.bot_id, "ts": ts, "type": "message", "subtype": "bot_message"}
        msg["app_id"] = self.app_id
        if args.get("username") and "chat:write.customize" in self.scopes.split(","):
            msg["username"] = args["username"]
        if args.get("thread_ts"):
            msg["thread_ts"] = args["thread_ts"]
        # Streamed Markdown is the message's blocks (markdown_text cannot be combined with text or blocks), so a
        # chat.update without blocks leaves the streamed words showing (given_blocks).
        msg["blocks"] = [{"type": "markdown", "text": text}]
        self._store(channel, msg)
        self._streaming.add((channel, ts))
        self.given_blocks.add((channel, ts))
        return {"ok": True, "channel": channel, "ts": ts}

    def _stream_target(self, args: dict[str, Any]) -> tuple[dict[str, Any], str] | str:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel:
            return "channel_not_found"
        msg = self._find(channel, ts)
        if msg is None:
            return "message_not_found"
        if (channel, ts) not in self._streaming:
            return "message_not_in_streaming_state"
        text = chunk_text(args)
        if text is None or check_chunks(jsonish(args.get("chunks")), self.stream_tasks.setdefault((channel, ts), {})):
            return "invalid_chunks"
        msg["text"] += text
        msg["blocks"] = [{"type": "markdown", "text": msg["text"]}, *msg["blocks"][1:]]
        return msg, channel

    def _api_chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any] | str:
        found = self._stream_target(args)
        if isinstance(found, str):
            return found
        return {"ok": True, "channel": found[1], "ts": found[0]["ts"]}

    def _api_chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any] | str:
        found = self._stream_target(args)
        if isinstance(found, str):
            return found
        msg, channel = found
        blocks = jsonish(args.get("blocks"))
        if isinstance(blocks, list):
            msg["blocks"] = [msg["blocks"][0], *blocks]  # under the streamed words
        self._streaming.discard((channel, msg["ts"]))
        keys = ("text", "bot_id", "ts", "type", "subtype")
        return {"ok": True, "channel": channel, "ts": msg["ts"], "message": {k: msg[k] for k in keys}}
