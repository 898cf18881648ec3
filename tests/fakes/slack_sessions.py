"""Agent sessions (agents.sessions.*, only for an app declared as an agent), the agent view of a DM
(assistant.threads.*: status, title, suggested prompts) and chat.postEphemeral, for the fake Slack."""

from __future__ import annotations

import threading
from typing import Any

from tests.fakes.slack_reference import jsonish, ref_body


class SlackSessions:
    """Mixed into FakeSlack, which provides _lock and _next_ts."""

    _lock: threading.RLock

    def _init_sessions(self) -> None:
        # Refused to an app that is not an agent, as reference/slack/web-api/agents.sessions.setStatus.json says.
        self.agent_app = False
        self.stop_event_subscribed = True
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, thread_ts) -> the session
        self.session_log: list[tuple[str, str, str]] = []  # (channel, thread_ts, status) in the order set
        self.ephemerals: list[dict[str, Any]] = []  # chat.postEphemeral messages, as sent
        # The agent view of a DM (assistant.threads.*): each thread's title and suggested prompts.
        self.thread_titles: dict[tuple[str, str], str] = {}
        self.suggested: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def _api_assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any] | str:
        if not args.get("channel_id"):
            return "channel_not_found"
        if not args.get("thread_ts"):
            return "invalid_thread_ts"
        if "status" not in args:
            return "invalid_arguments"
        return {"ok": True}

    def _api_assistant_threads_setTitle(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel, thread_ts, title = args.get("channel_id"), args.get("thread_ts"), args.get("title")
        if not channel or not thread_ts or not title:
            return "invalid_arguments"
        self.thread_titles[(str(channel), str(thread_ts))] = str(title)
        return {"ok": True}

    def _api_assistant_threads_setSuggestedPrompts(self, args: dict[str, Any]) -> dict[str, Any] | str:
        prompts = jsonish(args.get("prompts"))
        if not args.get("channel_id") or not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            return "invalid_arguments"
        if not all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts):
            return "invalid_arguments"
        self.suggested[(str(args["channel_id"]), str(args.get("thread_ts") or ""))] = prompts
        return {"ok": True}

    def _api_agents_sessions_setStatus(self, args: dict[str, Any]) -> dict[str, Any] | str:
        status = str(args.get("status") or "")
        if status not in ("active", "processing", "suspended", "closed"):
            return "invalid_arguments"
        if not self.agent_app:
            return "missing_scope"
        channel, thread_ts = str(args.get("channel_id") or ""), str(args.get("thread_ts") or "")
        if not channel or not thread_ts:
            return "invalid_arguments"
        key = (channel, thread_ts)
        session = self.sessions.get(key)
        if session is None:  # created by the first call: title and initiator count only then
            session = {"title": args.get("title") or "", "initiator": args.get("initiator_user_id")}
            self.sessions[key] = session
        session["status"] = status
        for field_name in ("username", "icon_emoji", "icon_url"):
            if args.get(field_name):
                session[field_name] = args[field_name]
        self.session_log.append((channel, thread_ts, status))
        case = "ok" if self.stop_event_subscribed else "ok_not_subscribed"
        body = ref_body("agents.sessions.setStatus", case)
        body.update(status=status, agent_status=status, title=session["title"])
        return body

    def _api_agents_sessions_rename(self, args: dict[str, Any]) -> dict[str, Any] | str:
        session = self.sessions.get((str(args.get("channel_id") or ""), str(args.get("thread_ts") or "")))
        if session is None:
            return "session_not_found"
        session["title"] = str(args.get("title") or "")
        return {"ok": True}

    def session_statuses(self, channel: str, thread_ts: str) -> list[str]:
        with self._lock:
            return [status for c, t, status in self.session_log if (c, t) == (channel, thread_ts)]

    def _api_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any] | str:
        if not args.get("channel"):
            return "channel_not_found"
        if not args.get("user"):
            return "user_not_in_channel"
        self.ephemerals.append({**args, "blocks": jsonish(args.get("blocks"))})
        return {"ok": True, "message_ts": self._next_ts()}
