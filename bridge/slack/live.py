"""A reply shown growing in place while an agent is still writing it, and replaced by the finished reply.

Two ways, per Slack's rules (../shared/reference/slack/limits.md): a streaming message (chat.startStream, then
chat.appendStream with each new piece of Markdown, then chat.stopStream), where the workspace allows it; else a
message edited with chat.update (at most 4,000 characters). A refusal of chat.startStream that says the app
cannot stream (a scope, the method) switches the process to chat.update for good; one that concerns a channel
(its type) does so for that channel; Slack's trouble skips the one draft. Drafts are best effort: a draft Slack
refuses is dropped, and the finished reply is always written over the draft (or posted anew when the draft
cannot be edited), so nothing is lost.
A stream also shows the agent's tool calls as tasks (tasks.py); a message edited in place never does.
A draft a dead process left is taken over by the run that resumes its turn: its stream stopped, then edited in
place (what was streamed into it is not known, so nothing can be appended), or stopped with a mark.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.addresses import names_address
from bridge.slack.failures import (
    BLOCKS_REFUSED,
    FAILURES,
    METHOD_REFUSED,
    OUTCOME_WAITS,
    outcome_unknown,
    passing,
    slack_error,
)
from bridge.slack.feedback import text_blocks, with_actions
from bridge.slack.markdown import escape
from bridge.slack.post import Author
from bridge.slack.ratelimits import patiently
from bridge.slack.render import MAX_TEXT
from bridge.slack.tasks import FINAL, MAX_BLOCKS, TaskDisplay, task_cards
from bridge.store.leases import check_lease

log = logging.getLogger(__name__)
NOT_STREAMING = "message_not_in_streaming_state"  # stopped, expired, or never a stream: already finished
STILL_STREAMING = "streaming_state_conflict"  # chat.update of a message still streaming: its stop did not land
# A draft Slack will not edit whatever it is given: the reply is posted anew, and the draft deleted first. One
# refused for what the reply holds (too long, blocks) is kept: the reply posted anew may be refused the same way.
NOT_EDITABLE = frozenset({"edit_window_closed", "cant_update_message"})

LiveMode = Literal["auto", "stream", "update"]
MORE = " …"


@dataclass
class Draft:
    """One growing message: its ts, whether it is a Slack stream, the Markdown streamed into it so far, and its
    tasks (each one's latest chunk by id; `unsent`: those Slack has not had yet, sent with the next call).
    `in_blocks`: a stopped stream taken over, whose words are its blocks, which an edit of `text` alone keeps."""

    channel: str
    ts: str
    streaming: bool
    sent: str = ""
    in_blocks: bool = False
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    unsent: dict[str, dict[str, Any]] = field(default_factory=dict)


_TRAILING_WORD = re.compile(r"@[a-z]*\Z", re.IGNORECASE)
_BROADCASTS = ("channel", "here", "everyone")


# A label longer than this is kept from linking unread: reading each nested label whole would cost a draft time
# that grows with the square of its length.
LABEL_READ = 1000


def _definition_at(text: str, start: int) -> bool:
    """Whether the `[` at `start` opens a line (after at most three spaces), as a reference definition's does."""
    line = text.rfind("\n", 0, start) + 1
    return start - line <= 3 and not text[line:start].strip(" ")


def _unlinked(text: str) -> str:
    """A link whose label names an address is kept from linking (a zero-width space after its `]`), so a draft
    never shows `[https://good](https://evil)` as the good address, as the finished reply does not
    (markdown._link): an inline link `](`, a reference link `][`, and a definition `]:` at a line's start that
    would make a label alone a link. Labels are found in one pass (brackets balanced, escaped ones skipped), and
    decided when the character after the `]` arrives, before the URL: what is streamed is only ever appended to."""
    out: list[str] = []
    done = 0
    opened: list[int] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2  # the next character is literal
            continue
        if char == "[":
            opened.append(i)
        elif char == "]" and opened:
            start = opened.pop()
            after = text[i + 1 : i + 2]
            if after and after in "([:" and (after != ":" or _definition_at(text, start)):
                label = text[start + 1 : i]
                if len(label) > LABEL_READ or names_address(label):
                    out.append(text[done : i + 1] + "\u200b")
                    done = i + 1
        i += 1
    return "".join(out) + text[done:]


def stream_text(markdown: str) -> str:
    """An agent's draft as streamed Markdown, at most MAX_TEXT characters: nothing in it can ping or form a Slack
    control sequence. A stream can only be appended to, so a draft ending in what may still become @here or
    @channel holds it back: once whole, the word is defused (`@\u200bhere`) and would not continue the stream."""
    safe = _unlinked(escape(markdown))
    tail = _TRAILING_WORD.search(safe)
    if tail and any(word.startswith(tail.group()[1:].lower()) for word in _BROADCASTS):
        safe = safe[: tail.start()]
    return safe[:MAX_TEXT]


# Least seconds between two draft edits in the whole process: chat.update is Tier 3 (about 50 a minute per
# workspace), chat.appendStream Tier 4 (about 100). A draft edit that would exceed it is skipped, not queued.
UPDATE_SPACING = 1.2
APPEND_SPACING = 0.6


class LiveMessages:
    """`drafts` is a client that does not wait out rate limits (a draft is skipped instead, and the process
    pauses its drafts for Retry-After); `client` retries them, for the finished reply."""

    def __init__(
        self,
        client: AsyncWebClient,
        drafts: AsyncWebClient | None = None,
        mode: LiveMode = "auto",
        tasks: TaskDisplay = "timeline",
    ) -> None:
        self._client = client
        self._drafts = drafts or client
        self._streams = mode != "update"
        self._no_streams: set[str] = set()  # channels whose type Slack streams no message in
        self._mode = mode
        self.tasks = tasks
        self._free_at = 0.0  # no draft call before this (loop time)
        self._paused_at = 0.0  # no draft call at all before this: Slack's Retry-After (loop time)

    def _may_edit(self, spacing: float) -> bool:
        now = asyncio.get_running_loop().time()
        if now < self._free_at:
            return False
        self._free_at = now + spacing
        return True

    def _refused(self, exc: BaseException) -> None:
        if isinstance(exc, SlackApiError) and exc.response.status_code == 429:
            retry_after = float(exc.response.headers.get("retry-after", "1") or 1)
            self._free_at = self._paused_at = asyncio.get_running_loop().time() + retry_after
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
        tasks: Sequence[dict[str, Any]] = (),
    ) -> Draft | None:
        """Open the draft: a stream seeded with `markdown` and the reply's `tasks` so far (its tool calls' chunks),
        or a message with the mrkdwn `text`; tasks alone open nothing where streams are refused."""
        check_lease()  # a turn's worker that stalled past its binding's lease opens no draft another may be writing
        if asyncio.get_running_loop().time() < self._paused_at:
            return None  # Slack's Retry-After for drafts still runs: asked again, a 429 more for every reply's draft
        if self._streams and channel not in self._no_streams:
            seed = stream_text(markdown)
            try:
                response = await self._drafts.chat_startStream(
                    channel=channel,
                    thread_ts=thread_ts,
                    markdown_text=seed or None,
                    chunks=list(tasks) or None,
                    task_display_mode=None if self.tasks == "off" else self.tasks,
                    recipient_team_id=recipient[0],
                    recipient_user_id=recipient[1],
                    username=author.username,
                    icon_emoji=author.icon_emoji,
                    icon_url=author.icon_url,
                )
                draft = Draft(channel, str(response.get("ts", "")), True, seed)
                draft.tasks.update((task["id"], task) for task in tasks)
                return draft
            except FAILURES as exc:
                error = slack_error(exc)
                self._refused(exc)
                if passing(exc) or self._mode == "stream":  # Slack's trouble: the stream may even have opened
                    log.info("slack chat.startStream refused error=%s; draft skipped", error)
                    return None
                if error in METHOD_REFUSED:  # no stream will work in this process
                    self._streams = False
                    log.warning("slack streaming messages unavailable (error=%s); growing replies by chat.update",
                                error)
                elif error == "channel_type_not_supported":
                    self._no_streams.add(channel)
                    log.info("slack streams no message in channel=%s; its replies grow by chat.update", channel)
                else:
                    log.info("slack chat.startStream refused error=%s; this draft grows by chat.update", error)
        if tasks and not text:
            return None  # tool calls alone: nothing to post where streams are refused (the reply's notes say them)
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

    async def adopt(self, channel: str, ts: str) -> Draft | None:
        """Take over a draft an earlier run of the turn left (that process died): its stream, if it still is one,
        is stopped, and it grows on by chat.update (the Markdown streamed into it is not known, so nothing can be
        appended). None while it may still be streaming: Slack refuses to edit a message in that state."""
        if self._mode == "update":
            return Draft(channel, ts, False)  # never a stream
        try:
            await self._drafts.chat_stopStream(channel=channel, ts=ts)
        except FAILURES as exc:
            if slack_error(exc) != NOT_STREAMING:
                self._refused(exc)
                log.info("slack earlier draft not taken over error=%s", slack_error(exc))
                return None
        return Draft(channel, ts, False, in_blocks=True)

    async def close(self, channel: str, ts: str, mark: str) -> None:
        """Stop a stream an earlier run of the turn left open and that no reply replaces, `mark` (Markdown)
        appended. A draft that is no stream any more is left as it is: its text is not known here."""
        if self._mode == "update":
            return
        try:
            await self._client.chat_stopStream(channel=channel, ts=ts, markdown_text=mark)
        except FAILURES as exc:
            if slack_error(exc) != NOT_STREAMING:
                log.info("slack earlier draft not closed error=%s", slack_error(exc))

    async def grow(self, draft: Draft, text: str, markdown: str) -> bool:
        """Show the longer draft: the new Markdown appended to a stream, or the message's text replaced. False
        when it waits for the workspace's next edit (other drafts edited just now): tried again with the next
        words, not after the draft's whole interval, or one draft would keep losing its turn to another."""
        check_lease()  # nor edits one the process taking over may have finished
        try:
            if draft.streaming:
                whole = stream_text(markdown)
                if not whole.startswith(draft.sent) or len(whole) == len(draft.sent):
                    return True
                if not self._may_edit(APPEND_SPACING):
                    return False
                piece = whole[len(draft.sent) :]
                if draft.unsent:  # tasks Slack has not had yet go with the text, in one call
                    chunks = [{"type": "markdown_text", "text": piece}, *draft.unsent.values()]
                    await self._drafts.chat_appendStream(channel=draft.channel, ts=draft.ts, chunks=chunks)
                    draft.unsent.clear()
                else:
                    await self._drafts.chat_appendStream(channel=draft.channel, ts=draft.ts, markdown_text=piece)
                draft.sent = whole
            elif self._may_edit(UPDATE_SPACING):
                blocks = text_blocks(text) if draft.in_blocks else None
                await self._drafts.chat_update(channel=draft.channel, ts=draft.ts, text=text, blocks=blocks)
            else:
                return False
        except FAILURES as exc:
            self._refused(exc)
            _forget_refused(draft, exc)
            log.info("slack draft not updated error=%s", slack_error(exc))
        return True

    async def task(self, draft: Draft, chunk: dict[str, Any]) -> None:
        """Move a task of a stream on (a tool call's new state). Not spaced like text, since a task moves a few
        times only; while Slack's Retry-After lasts, or when the call fails, it waits for the draft's next call."""
        before = draft.tasks.get(chunk["id"])
        if not draft.streaming or before == chunk or (before is not None and before["status"] in FINAL):
            return  # a task that ended stays as it ended (the App Server repeats a tool's return)
        check_lease()
        draft.tasks[chunk["id"]] = draft.unsent[chunk["id"]] = chunk
        if asyncio.get_running_loop().time() < self._paused_at:
            return
        try:
            await self._drafts.chat_appendStream(channel=draft.channel, ts=draft.ts, chunks=list(draft.unsent.values()))
            draft.unsent.clear()
        except FAILURES as exc:
            self._refused(exc)
            _forget_refused(draft, exc)
            log.info("slack task not updated error=%s", slack_error(exc))

    async def replace_with(
        self,
        channel: str,
        ts: str,
        text: str,
        streaming: bool | None,
        actions: tuple[dict[str, Any], ...] = (),
        draft: Draft | None = None,
    ) -> bool:
        """Write the finished reply's first message over the draft, the draft's tasks kept above it as task
        cards. False when the draft cannot be edited (deleted, too old): the caller posts the reply anew.
        `streaming` None: not known (after a restart)."""
        check_lease()
        unsent = list(draft.unsent.values()) if draft is not None else []
        if streaming is not False:
            await self._stop(channel, ts, unsent, said=bool(streaming))
        restops = 0
        body = text_blocks(text) + list(actions)
        cards = task_cards(list(draft.tasks.values()), MAX_BLOCKS - len(body)) if draft is not None else []
        # Slack refusing the blocks (task cards, buttons) is no reason to show the reply twice: fewer are tried.
        choices: list[list[dict[str, Any]] | None]
        if streaming is False and not (draft is not None and draft.in_blocks):
            choices = [with_actions(text, actions), None] if actions else [None]
        else:
            # A stream's words are its blocks (a stopped one taken over after a restart too), which an edit without
            # `blocks` keeps (chat.update: "the message's previous blocks will be retained"): the reply is given as
            # blocks, and at the last as none at all.
            choices = [cards + body, body, []] if cards else [body, []]
        blocks, waited = choices.pop(0), 0
        while True:
            check_lease()  # each try: one made after a wait may come after the lease was lost
            try:
                await patiently(partial(self._client.chat_update, channel=channel, ts=ts, text=text, blocks=blocks))
                return True
            except FAILURES as exc:
                error = slack_error(exc)
                if error in BLOCKS_REFUSED and choices:
                    log.warning("slack refused a reply's blocks error=%s; replacing its draft with less", error)
                    blocks = choices.pop(0)
                    continue
                if error == STILL_STREAMING and restops < 2:  # the stop did not land: a new post would show it twice
                    restops += 1
                    await self._stop(channel, ts, [], said=True)
                    continue
                # An edit whose outcome is unknown (a 5xx, the connection) may have landed: the same edit again
                # is harmless, where a new post would show the reply twice.
                if not outcome_unknown(exc) or waited == len(OUTCOME_WAITS):
                    log.warning("slack draft could not be replaced by the reply error=%s; posting it anew", error)
                    # The draft may show the reply's words, and would stay beside it (a rate limit past every wait
                    # leaves it as it was); the reply itself may still be posted.
                    if error in NOT_EDITABLE or passing(exc):
                        await self._withdraw(channel, ts)
                    return False
                await asyncio.sleep(OUTCOME_WAITS[waited])
                waited += 1

    async def _withdraw(self, channel: str, ts: str) -> None:
        """A draft Slack will not edit (too old to edit, Slack's trouble past every wait) is deleted before
        the reply is posted anew: its stream may show the whole reply, which would then be in the thread twice.
        Best effort: a draft left stays, marked by nothing, beside the reply."""
        try:
            await patiently(lambda: self._client.chat_delete(channel=channel, ts=ts))
        except FAILURES as exc:
            log.warning("slack draft not deleted error=%s", slack_error(exc))

    async def _stop(self, channel: str, ts: str, unsent: list[dict[str, Any]], said: bool) -> None:
        """Stop a draft's stream, its tasks Slack has not had yet with it; tried again while the outcome is unknown
        (a stop that landed answers the next one `message_not_in_streaming_state`). `said`: a failure is logged."""
        waited = 0
        while True:
            try:
                try:
                    await patiently(lambda: self._client.chat_stopStream(channel=channel, ts=ts, chunks=unsent or None))
                except FAILURES as exc:
                    if not unsent or not _invalid(exc):
                        raise
                    await patiently(lambda: self._client.chat_stopStream(channel=channel, ts=ts))  # without them
                return
            except FAILURES as exc:
                if slack_error(exc) == NOT_STREAMING:
                    return
                if outcome_unknown(exc) and waited < len(OUTCOME_WAITS):
                    await asyncio.sleep(OUTCOME_WAITS[waited])
                    waited += 1
                    check_lease()
                    continue
                if said:
                    log.info("slack chat.stopStream failed error=%s", slack_error(exc))
                return


def _invalid(exc: BaseException) -> bool:
    """Slack refused the call for what it held (`invalid_chunks`, `invalid_arguments`): sent again, it fails again."""
    return slack_error(exc).startswith("invalid_")


def _forget_refused(draft: Draft, exc: BaseException) -> None:
    """Tasks a call took to Slack and Slack refused as invalid are dropped: each later call would carry them again,
    fail again, and the draft would stop growing (and never be stopped, so the reply could not replace it)."""
    if _invalid(exc):
        draft.unsent.clear()
