"""Slack's agent sessions for a thread's turns, and the fallbacks where the app cannot have them.

A turn sets its thread's session to `processing` (Slack then shows its working state and a native Stop button),
`active` when it ends, `suspended` while it waits for a person. Only apps declared as agents can create
sessions (that adds the `assistant:write` scope); the first refusal is remembered and said once in the log,
and from then on the turn shows the 👀/✅ reactions, the status line and, for the person who asked, an
ephemeral Stop button instead (see docs/sessions.md and reference/slack/web-api/agents.sessions.setStatus.json).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config_values import MOST_PROMPTS
from bridge.slack.failures import FAILURES, METHOD_REFUSED, passing, slack_error
from bridge.slack.post import Author

log = logging.getLogger(__name__)

SessionStatus = Literal["processing", "active", "suspended", "closed"]
TITLE_CHARS = 200  # Slack's limit for a session's title
_BESIDE = re.compile(r" \((?:https?|mailto):\S+\)")  # the url `links.link_words` writes beside a link's label
STOP_ACTION = "letta_stop_turn"
STOP_TEXT = "Working on it. Press Stop to end the agents' work in this thread."
MAX_PROMPT_TITLE = 75
NOT_SUBSCRIBED = "missing_agent_session_stopped_event_subscription"
# Refusals that say the app cannot have sessions at all (not an agent, the method off): sessions given up. Any
# other refusal is the thread's or the channel's (the bot removed from it, archived): that turn shows reactions.
APP_REFUSALS = METHOD_REFUSED | {"not_allowed", "invalid_auth", "not_authed", "account_inactive", "token_revoked",
                                  "token_expired"}


def link_labels(words: str) -> str:
    """Each link read as words (`decide.clean_text`) as its label alone: a title has no room for the url beside
    it. A url a person put in brackets after a word goes too: the words no longer say which it was."""
    return _BESIDE.sub("", words)


def session_title(words: str) -> str:
    """A session's title: the first line of a turn's words (`decide.clean_text`: Slack's escaping already undone,
    so not again; people and channels named by the caller: `readable`), each link as its label alone
    (`link_labels`), clipped to Slack's 200 characters."""
    line = next((ln.strip() for ln in link_labels(words).splitlines() if ln.strip()), "") or "Letta agents"
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def stop_blocks(channel: str, thread_ts: str) -> list[dict[str, Any]]:
    """The fallback Stop button (where sessions are unavailable): its value names the thread."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": STOP_TEXT}},
        {
            "type": "actions",
            "block_id": "letta_stop",
            "elements": [
                {
                    "type": "button",
                    "action_id": STOP_ACTION,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Stop"},
                    "value": f"{channel}|{thread_ts}",
                }
            ],
        },
    ]


def stop_target(value: str) -> tuple[str, str] | None:
    """(channel, thread_ts) from a Stop button's value."""
    channel, _, thread_ts = value.partition("|")
    return (channel, thread_ts) if channel and thread_ts else None


class Sessions:
    """Agent sessions, remembered as unavailable after Slack's first refusal (not a transient failure)."""

    def __init__(self, client: AsyncWebClient, enabled: bool = True, stop_button: bool = True) -> None:
        self._client = client
        self._works: bool | None = None if enabled else False  # None: not asked yet
        self._stop_button = stop_button
        self._warned: set[str] = set()
        self.refusal = "" if enabled else "off (SLACK_SESSIONS=false)"

    @property
    def available(self) -> bool | None:
        """True once a session was set, False once refused (or off), None before the first try."""
        return self._works

    async def set(
        self,
        channel: str,
        thread_ts: str,
        status: SessionStatus,
        title: str | None = None,
        author: Author | None = None,
        initiator: str | None = None,
        attempts: int = 1,
    ) -> bool:
        """Set the thread's session status (creating the session, with its title, name and icon); False when
        sessions are unavailable or this call failed, so that the caller shows the fallbacks. A call Slack failed
        for a while (5xx, rate-limited, the connection) is made `attempts` times, a second more apart each time:
        a turn's last status, `active`, left unset keeps the session `processing` for good."""
        for attempt in range(attempts):
            done = await self._set_once(channel, thread_ts, status, title, author, initiator)
            if done is not None:
                return done
            if attempt + 1 < attempts:
                await asyncio.sleep(attempt + 1)
        return False

    async def _set_once(
        self,
        channel: str,
        thread_ts: str,
        status: SessionStatus,
        title: str | None,
        author: Author | None,
        initiator: str | None,
    ) -> bool | None:
        """One setStatus call: True, False (sessions unavailable), or None when it failed for a while."""
        if self._works is False:
            return False
        who = author or Author()
        try:
            response = await self._client.agents_sessions_setStatus(
                channel_id=channel,
                thread_ts=thread_ts,
                status=status,
                title=title,
                initiator_user_id=initiator,
                username=who.username,
                icon_emoji=who.icon_emoji,
                icon_url=who.icon_url,
            )
        except SlackApiError as exc:
            error = slack_error(exc)
            if passing(exc):
                log.info("slack agents.sessions.setStatus failed error=%s", error)
                return None
            if error not in APP_REFUSALS:  # this thread's or channel's (the bot removed, archived): the others go on
                log.info("slack agent session refused channel=%s error=%s; this turn shows reactions", channel, error)
                return False
            self._works = False
            self.refusal = error
            log.warning(
                "slack agent sessions unavailable (error=%s); turns show reactions, the status line and a Stop "
                "button instead. Declare the app as an agent (it adds assistant:write) to use them",
                error,
            )
            return False
        except FAILURES as exc:
            log.info("slack agents.sessions.setStatus failed error=%s", slack_error(exc))
            return None
        self._works = True
        warning = str(response.get("warning") or "")
        for each in filter(None, warning.split(",")):
            if each not in self._warned:
                self._warned.add(each)
                hint = " (subscribe the app to agent_session_stopped)" if each == NOT_SUBSCRIBED else ""
                log.warning("slack agents.sessions.setStatus warning=%s%s", each, hint)
        return True

    async def rename(self, channel: str, thread_ts: str, title: str) -> None:
        if self._works is not True:
            return
        try:
            await self._client.agents_sessions_rename(channel_id=channel, thread_ts=thread_ts, title=title)
        except FAILURES as exc:
            log.info("slack agents.sessions.rename failed error=%s", slack_error(exc))

    async def set_title(self, channel: str, thread_ts: str, title: str) -> None:
        """A DM thread's title in Slack's agent view (assistant.threads.setTitle); best effort."""
        try:
            await self._client.assistant_threads_setTitle(channel_id=channel, thread_ts=thread_ts, title=title)
        except FAILURES as exc:
            log.info("slack assistant.threads.setTitle failed error=%s", slack_error(exc))

    async def suggest(self, channel: str, thread_ts: str, prompts: tuple[str, ...]) -> None:
        """The prompts a new agent-view thread offers (assistant.threads.setSuggestedPrompts, at most 4)."""
        if not prompts:
            return
        shown = [{"title": p[:MAX_PROMPT_TITLE], "message": p} for p in prompts[:MOST_PROMPTS]]
        try:
            await self._client.assistant_threads_setSuggestedPrompts(
                channel_id=channel, thread_ts=thread_ts, prompts=shown
            )
        except FAILURES as exc:
            log.info("slack assistant.threads.setSuggestedPrompts failed error=%s", slack_error(exc))

    async def offer_stop(self, channel: str, thread_ts: str, user: str) -> None:
        """The fallback Stop button, shown only to the person who asked (an ephemeral message in the thread)."""
        if not self._stop_button or not user:
            return
        try:
            await self._client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, text=STOP_TEXT, blocks=stop_blocks(channel, thread_ts)
            )
        except FAILURES as exc:
            log.info("slack Stop button not shown error=%s", slack_error(exc))
