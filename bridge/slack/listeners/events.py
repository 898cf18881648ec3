"""Events API listeners: a listener for every subscribed event, so Slack never gets a 404 and retries."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bridge.configure import is_direct
from bridge.domain import Turn
from bridge.relay import Relay
from bridge.slack.decide import (
    Edit,
    Ignored,
    channel_moved,
    decide_mention,
    decide_message,
    deleted_message,
    edit_asks,
    edit_in_thread,
    edit_of,
    no_longer_addressed,
)
from bridge.slack.listeners.sessions import StopHandler, is_stop

log = logging.getLogger(__name__)


def _log_ignored(kind: str, body: dict[str, Any], decision: Ignored) -> None:
    log.info(
        "slack event ignored type=%s event_id=%s reason=%s %s",
        kind,
        body.get("event_id", ""),
        decision.reason,
        decision.detail,
    )


def register(
    app: AsyncApp,
    relay: Relay,
    direct_messages: bool = False,
    thread_follow_ups: bool = True,
    stops: StopHandler | None = None,
) -> None:
    async def stopped(turn: Turn, client: AsyncWebClient) -> bool:
        """`stop` said to the bot in a thread stops the thread's work instead of becoming a turn; taken up in the
        store before the ack, as a turn is accepted, so that a copy of it anywhere else is dropped. A follow-up
        without a mention in a thread where nothing runs or waits is said to the agents (it answers one of
        theirs: "reply proceed or cancel"), not taken for a stop of nothing; so is a direct message, which never
        has a mention. Where a follow-up would not be a turn, its stop word stops nothing either."""
        if stops is None or turn.thread_ts == turn.message_ts or not is_stop(turn.text):
            return False
        unmentioned = turn.follow_up or is_direct(turn.channel_id)
        if turn.follow_up and await relay.not_followed(turn.team_id, turn.channel_id, turn.thread_ts):
            return False  # the people's reply (follow-ups off here, or the channel disconnected): accept drops it
        if unmentioned and not await stops.stopping.anything_in(turn.team_id, turn.channel_id, turn.thread_ts):
            return False
        if await stops.first_time(turn):  # a retry, or the mention's message twin, finds it taken
            stops.spawn(stops.on_stop_word(client, turn, quiet=unmentioned), "stop word", press=True)
        return True

    async def to_stop(body: dict[str, Any], edit: Edit, bot_user_id: str | None) -> bool:
        """A thread reply edited to a stop word: its waiting turn is taken back, never sent, where a new reply of
        those words would be a stop (`stopped`'s rule): with the bot's mention, or without one where something
        else of the thread runs or waits; else its words answer the agents ("reply proceed or cancel"). It stops
        nothing else, as the edit of a question is no new command."""
        thread = edit_in_thread(body, bot_user_id) if is_stop(edit[3]) else None
        if thread is None:
            return False
        if thread[1] and not is_direct(edit[1]):
            return True
        return stops is not None and await stops.stopping.anything_in(edit[0], edit[1], thread[0], besides=edit[2])

    @app.event("app_mention")
    async def on_mention(body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        edit, emptied = edit_of(body, context.bot_user_id)
        asks = edit_asks(body, context.bot_user_id)
        if edit is not None and await to_stop(body, edit, context.bot_user_id):  # never sent to the agents
            await relay.withdraw(*edit[:3], "stop", edit[5], asks=asks)
        elif edit is not None:  # a waiting turn takes the new words
            await relay.edit(*edit, asks=asks)
        elif emptied is not None:  # nothing left to answer: taken back, as an empty mention is ignored
            await relay.withdraw(*emptied[:3], "emptied", emptied[5], asks=asks)
        decision = decide_mention(body, context.bot_user_id, context.bot_id)
        if isinstance(decision, Turn) and await stopped(decision, client):
            return
        if isinstance(decision, Turn):
            # Recorded durably here, before Bolt acknowledges; Letta is called later by the relay's tasks.
            await relay.accept(decision)
        else:
            _log_ignored("app_mention", body, decision)

    @app.event("channel_id_changed")
    async def on_channel_id_changed(body: dict[str, Any]) -> None:
        moved = channel_moved(body)
        if moved is not None:
            await relay.channel_moved(*moved)

    @app.event("message")
    async def on_message(body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        deleted = deleted_message(body)
        if deleted is not None:  # a mention (or follow-up) taken back: its turn is not run if it still waits
            await relay.withdraw(*deleted)
            return
        edit, emptied = edit_of(body, context.bot_user_id)
        away = no_longer_addressed(body, context.bot_user_id) if edit is not None else None
        asks = edit_asks(body, context.bot_user_id)  # where an edit that found no turn is worth remembering
        if emptied is not None:  # nothing left to answer (a mention or follow-up): as if taken back
            await relay.withdraw(*emptied[:3], "emptied", emptied[5], asks=asks)
        elif edit is not None and await to_stop(body, edit, context.bot_user_id):  # never sent to the agents
            await relay.withdraw(*edit[:3], "stop", edit[5], asks=asks)
        elif edit is not None and away is not None and is_stop(edit[3]):  # its mention edited away, to "stop"
            await relay.withdraw(*edit[:3], "stop", edit[5], asks=asks)
        elif edit is not None and away is not None and away[0] != "unmentioned":  # as if taken back
            await relay.withdraw(*edit[:3], "addressed" if away[0] == "away" else "unmentioned", edit[5], asks=asks)
        elif edit is not None and away is not None:
            await relay.edited_away(away[1], edit, asks=asks)
        elif edit is not None:
            await relay.edit(*edit, asks=asks)
        decision = decide_message(body, context.bot_user_id, context.bot_id, direct_messages, thread_follow_ups)
        if isinstance(decision, Turn) and await stopped(decision, client):
            return
        if isinstance(decision, Turn):
            await relay.accept(decision)
        else:
            _log_ignored("message", body, decision)
