"""Posting what a turn owes its thread: the outbox's entries in order, each split into Slack messages, each
message recorded as it lands, so a restarted bridge posts only what is missing."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

from bridge.config import Settings
from bridge.drafts import TurnDrafts
from bridge.metrics import UNMETERED, Metrics
from bridge.outbox import TurnOutbox
from bridge.slack.failures import SlackPostError
from bridge.slack.feedback import feedback_actions
from bridge.slack.post import Part, SlackPoster
from bridge.slack.render import escape
from bridge.stopping import RunningTurn, TurnStops
from bridge.store.base import OutboxItem
from bridge.store.locks import AckFirst
from bridge.turn_words import REFUSED_PART

# Outbox sources: an agent's reply, and its reasoning and tool calls (shown where the channel asks).
REPLY = "reply:"
NOTES = "notes:"


def _whose(item: OutboxItem, shown_name: Callable[[str], str]) -> str:
    if item.agent_name is None:
        return "the bridge's notice"
    what = "reasoning and tool calls" if item.source.startswith(NOTES) else "reply"
    return f"{shown_name(item.agent_name)}'s {what}"


class TurnFlush:
    """One worker's posting of its turns' outboxes."""

    metrics: Metrics = UNMETERED  # the worker's, set with it

    def __init__(self, settings: Settings, poster: SlackPoster, stops: TurnStops, ack_first: AckFirst) -> None:
        self._settings = settings
        self._poster = poster
        self._stops = stops
        self._ack_first = ack_first

    async def flush(
        self,
        outbox: TurnOutbox,
        turn_id: int,
        channel: str,
        thread_ts: str,
        message_ts: str,
        resumed: bool,
        drafts: TurnDrafts,
        running: RunningTurn | None = None,
    ) -> None:
        """Post every part the turn still owes, in order, recording each one. A reply's first part goes over
        its draft when it had one. A stopped turn posts nothing more (TurnStopped)."""
        pending = await outbox.pending()
        if running is not None and pending:
            await self._stops.check(running)
        for item in pending:
            await self._ack_first.give_way()
            if item.source.startswith(NOTES):
                parts = self._poster.note_parts(item.agent_name or "", json.loads(item.text))
            else:
                parts = self._poster.parts(item.agent_name, item.text)
            for index, part in enumerate(parts):
                if index in item.posted:
                    continue
                if running is not None:
                    running.check()  # a stop delivered while earlier parts posted: nothing more is posted
                if self._settings.slack_feedback and item.source.startswith(REPLY) and index == len(parts) - 1:
                    # The reply's last message carries the feedback buttons (bridge/slack/feedback.py).
                    name = item.agent_name or ""
                    actions = feedback_actions(turn_id, item.source[len(REPLY) :], name, self._poster.shown_name(name))
                    part = replace(part, actions=actions)
                ts = None
                check_first, outbox.in_doubt = resumed or outbox.in_doubt, True
                if index == 0 and item.source.startswith(REPLY):
                    ts = await drafts.replace(item.source[len(REPLY) :], part.text, part.actions)
                if ts is None:
                    ts = await self._post(item, part, channel, thread_ts, message_ts, check_first, outbox)
                await outbox.posted(item, index, ts, last=index == len(parts) - 1)
                outbox.in_doubt = False
                self.metrics.reply_posted(item.agent_name)
            if not parts:
                await outbox.posted(item, 0, "", last=True)

    async def _post(
        self,
        item: OutboxItem,
        part: Part,
        channel: str,
        thread_ts: str,
        message_ts: str,
        check_first: bool,
        outbox: TurnOutbox,
    ) -> str:
        """Post one part; one Slack refuses for what it holds is replaced by a notice saying so, and the rest of
        the turn is still posted (a channel the bot cannot post in still fails the turn)."""
        taken = outbox.thread_posts
        try:
            return await self._poster.post(
                channel, thread_ts, part, check_first=check_first, after=message_ts, taken=taken
            )
        except SlackPostError as exc:
            if not exc.refused:
                raise
            outbox.refused += 1
            told = Part(escape(REFUSED_PART.format(whose=_whose(item, self._poster.shown_name), error=exc.error)), None)
            return await self._poster.post(
                channel, thread_ts, told, check_first=check_first, after=message_ts, taken=taken
            )
