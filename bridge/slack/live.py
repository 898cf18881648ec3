"""A reply shown growing in place while an agent is still writing it, and replaced by the finished reply.

Two ways, per Slack's rules (../shared/reference/slack/limits.md): a streaming message (chat.startStream, then
chat.appendStream with each new piece of Markdown, then chat.stopStream), where the workspace allows it; else a
message edited with chat.update (at most 4,000 characters). The first refusal of chat.startStream switches the
process to chat.update for good. Drafts are best effort: a draft Slack refuses is dropped, and the finished
reply is always written over the draft (or posted anew when the draft cannot be edited), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.feedback import with_actions
from bridge.slack.markdown import escape
from bridge.slack.post import FAILURES, Author, slack_error
from bridge.slack.render import MAX_TEXT

log = logging.getLogger(__name__)

LiveMode = Literal["auto", "stream", "update"]
MORE = " …"


@dataclass
class Draft:
    """One growing message: its ts, whether it is a Slack stream, and the Markdown streamed into it so far."""

    channel: str
    ts: str
    streaming: bool
    sent: str = ""


def stream_text(markdown: str) -> str:
    """An agent's draft as streamed Markdown: nothing in it can ping or form a Slack control sequence."""
    return escape(markdown)


# Least seconds between two draft edits in the whole process: chat.update is Tier 3 (about 50 a minute per
# workspace), chat.appendStream Tier 4 (about 100). A draft edit that would exceed it is skipped, not queued.
UPDATE_SPACING = 1.2
APPEND_SPACING = 0.6


class LiveMessages:
    """`drafts` is a client that does not wait out rate limits (a draft is skipped instead, and the process
    pauses its drafts for Retry-After); `client` retries them, for the finished reply."""

    def __init__(self, client: AsyncWebClient, drafts: AsyncWebClient | None = None, mode: LiveMode = "auto") -> None:
        self._client = client
        self._drafts = drafts or client
        self._streams = mode != "update"
        self._mode = mode
        self._free_at = 0.0  # no draft call before this (loop time)

    def _may_edit(self, spacing: float) -> bool:
        now = asyncio.get_running_loop().time()
        if now < self._free_at:
            return False
        self._free_at = now + spacing
        return True

    def _refused(self, exc: BaseException) -> None:
        if isinstance(exc, SlackApiError) and exc.response.status_code == 429:
            retry_after = float(exc.response.headers.get("retry-after", "1") or 1)
            self._free_at = asyncio.get_running_loop().time() + retry_after
            log.info("slack rate-limited a draft; drafts paused for %.0fs", retry_after)

    @property
    def streams(self) -> bool:
        return self._streams

    async def start(
        self,
        channel: str,
        thread_ts: str,
        text: str,
        markdown: str,
        author: Author,
        recipient: tuple[str, str],
    ) -> Draft | None:
        """Open the draft: a stream seeded with `markdown`, or a message with the mrkdwn `text`."""
        if self._streams:
            seed = stream_text(markdown)[:MAX_TEXT]
            try:
                response = await self._drafts.chat_startStream(
                    channel=channel,
                    thread_ts=thread_ts,
                    markdown_text=seed,
                    recipient_team_id=recipient[0],
                    recipient_user_id=recipient[1],
                    username=author.username,
                    icon_emoji=author.icon_emoji,
                    icon_url=author.icon_url,
                )
                return Draft(channel, str(response.get("ts", "")), True, seed)
            except FAILURES as exc:
                error = slack_error(exc)
                self._refused(exc)
                if error in ("ratelimited", "rate_limited") or self._mode == "stream":
                    log.info("slack chat.startStream refused error=%s; draft skipped", error)
                    return None
                self._streams = False
                log.warning("slack streaming messages unavailable (error=%s); growing replies by chat.update", error)
        try:
            response = await self._drafts.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                username=author.username,
                icon_emoji=author.icon_emoji,
                icon_url=author.icon_url,
                unfurl_links=False,
                unfurl_media=False,
            )
        except FAILURES as exc:
            self._refused(exc)
            log.info("slack draft not posted error=%s", slack_error(exc))
            return None
        return Draft(channel, str(response.get("ts", "")), False)

    async def grow(self, draft: Draft, text: str, markdown: str) -> None:
        """Show the longer draft: the new Markdown appended to a stream, or the message's text replaced."""
        try:
            if draft.streaming:
                whole = stream_text(markdown)[:MAX_TEXT]
                if not whole.startswith(draft.sent) or len(whole) == len(draft.sent):
                    return
                if not self._may_edit(APPEND_SPACING):
                    return
                await self._drafts.chat_appendStream(
                    channel=draft.channel, ts=draft.ts, markdown_text=whole[len(draft.sent) :]
                )
                draft.sent = whole
            elif self._may_edit(UPDATE_SPACING):
                await self._drafts.chat_update(channel=draft.channel, ts=draft.ts, text=text)
        except FAILURES as exc:
            self._refused(exc)
            log.info("slack draft not updated error=%s", slack_error(exc))

    async def replace_with(
        self, channel: str, ts: str, text: str, streaming: bool | None, actions: tuple[dict[str, Any], ...] = ()
    ) -> bool:
        """Write the finished reply's first message over the draft. False when the draft cannot be edited
        (deleted, too old): the caller posts the reply anew. `streaming` None: not known (after a restart)."""
        if streaming is not False:
            try:
                await self._client.chat_stopStream(channel=channel, ts=ts)
            except FAILURES as exc:
                if streaming:
                    log.info("slack chat.stopStream failed error=%s", slack_error(exc))
        try:
            await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=with_actions(text, actions))
            return True
        except FAILURES as exc:
            log.warning("slack draft could not be replaced by the reply error=%s; posting it anew", slack_error(exc))
            return False
