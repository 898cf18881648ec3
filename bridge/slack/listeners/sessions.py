"""Stopping a thread's work from Slack: the session's native Stop button (`agent_session_stopped`), the bridge's
fallback Stop button, and a `stop` said to the bot in the thread. Each is acknowledged at once; the stop (the
store, the Letta cancel calls) runs in a task the bridge owns."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import Turn
from bridge.notice_words import STOPPED_NOTICE
from bridge.slack.decide import installed_team
from bridge.slack.failures import FAILURES, slack_error
from bridge.slack.member_facts import member_facts
from bridge.slack.permissions import Member, Policy, may_configure, needs_lookup, who_may_configure
from bridge.slack.sessions import STOP_ACTION, Sessions, stop_target
from bridge.stop_request import StopOutcome, Stopping
from bridge.store.base import stop_word_key
from bridge.tasks import RESTARTING, Tasks

log = logging.getLogger(__name__)

STOP_WORDS = frozenset({"stop", "stop!", "/stop", "cancel"})
NOTHING = "Nothing is running in this thread."
NOTHING_CHANNEL = "Nothing is running in this channel."
STOPPING = "Already stopping: the agents' work is being cancelled."


def is_stop(text: str) -> bool:
    return text.strip().lower() in STOP_WORDS


def configurer_check(
    client: AsyncWebClient, policy: Policy, user_id: str, channel_id: str
) -> Callable[[], Awaitable[bool]]:
    """Whether the member may configure the channel, asked of Slack only when needed."""

    async def check() -> bool:
        member = Member(user_id)
        if needs_lookup(user_id, policy):
            member = await member_facts(client, user_id, channel_id, policy.by == "creator")
        return may_configure(member, policy)

    return check


def stop_answer(outcome: StopOutcome, channel_wide: bool = False) -> str:
    if outcome.refused is not None:
        askers = ", ".join(f"<@{a}>" for a in outcome.askers)
        return f"Only {outcome.refused} may stop this ({askers} asked)."
    if outcome.stopped == 0 and outcome.stopping:
        return STOPPING
    if outcome.stopped == 0:
        return NOTHING_CHANNEL if channel_wide else NOTHING
    return f"Stopped {outcome.stopped} turn{'' if outcome.stopped == 1 else 's'}."


class StopHandler:
    def __init__(
        self, stopping: Stopping, sessions: Callable[[AsyncWebClient], Sessions], tasks: Tasks, policy: Policy
    ) -> None:
        self.stopping = stopping
        self._sessions = sessions  # the sessions seen through the request's client (its workspace's, in OAuth mode)
        self._tasks = tasks
        self.policy = policy
        self.prompts: tuple[str, ...] = ()  # suggested in a new DM thread (set where DEFAULT_TARGET is)

    async def stop(
        self, client: AsyncWebClient, team: str, channel: str, thread_ts: str | None, user: str
    ) -> StopOutcome:
        return await self.stopping.request(
            team,
            channel,
            thread_ts,
            user,
            configurer_check(client, self.policy, user, channel),
            who_may_configure(self.policy),
        )

    def sessions(self, client: AsyncWebClient) -> Sessions:
        return self._sessions(client)

    async def tell(self, client: AsyncWebClient, channel: str, thread_ts: str, user: str, text: str) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)
        except FAILURES as exc:
            log.info("slack chat.postEphemeral failed error=%s", slack_error(exc))

    async def say_untold(self, client: AsyncWebClient, channel: str, outcome: StopOutcome) -> None:
        """In each thread whose waiting mentions the stop ended with no queue notice to say so: said where every
        asker sees it (the stopper may not be the asker), once (a notice of another process says it there)."""
        for thread_ts in outcome.untold:
            try:
                await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=STOPPED_NOTICE)
            except FAILURES as exc:
                log.info("slack chat.postMessage failed error=%s", slack_error(exc))

    async def on_session_stopped(self, client: AsyncWebClient, team: str, event: dict[str, Any]) -> None:
        channel, thread_ts, user = str(event.get("channel", "")), str(event.get("thread_ts", "")), event.get("user")
        outcome = await self.stop(client, team, channel, thread_ts, str(user or ""))
        if outcome.refused is not None:
            await self.tell(client, channel, thread_ts, str(user or ""), stop_answer(outcome))
            return
        await self.say_untold(client, channel, outcome)
        if outcome.stopped == 0:  # nothing ran: the session must still leave `processing`
            await self._sessions(client).set(channel, thread_ts, "active")

    async def on_stop_word(self, client: AsyncWebClient, turn: Turn, quiet: bool) -> None:
        """`quiet`: a follow-up without a mention, in a thread where nothing may run; nobody asked the bot."""
        outcome = await self.stop(client, turn.team_id, turn.channel_id, turn.thread_ts, turn.user_id)
        if outcome.refused is not None or (outcome.stopped == 0 and not quiet):
            await self.tell(client, turn.channel_id, turn.thread_ts, turn.user_id, stop_answer(outcome))
        await self.say_untold(client, turn.channel_id, outcome)

    async def first_time(self, turn: Turn) -> bool:
        """Once per message across every process on the database: Slack's retry of the event (to any process)
        and the mention's message twin are not a second stop, nor a second "Nothing is running"."""
        return await self.stopping.first(stop_word_key(turn.team_id, turn.channel_id, turn.message_ts))

    async def first_event(self, body: dict[str, Any]) -> bool:
        """Once per event id across every process: Slack's retry of its Stop is not a second stop (a second
        refusal, or the session set active over whatever the thread does next)."""
        event_id = str(body.get("event_id") or "")
        return not event_id or await self.stopping.first(event_id)

    def spawn(self, work: Coroutine[Any, Any, None], name: str, press: bool = False) -> bool:
        """Run `work` after the ack; False when the bridge is stopping (a `press`, a person's Stop, is still taken
        while the turns have their grace)."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("stop failed")

        if not self._tasks.spawn(run(), name=name, while_stopping=press):
            work.close()
            log.info("stop not run: the bridge is stopping")
            return False
        return True


def register(app: AsyncApp, handler: StopHandler) -> None:
    @app.event("agent_session_stopped")
    async def on_session_stopped(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        team = installed_team(body)  # a Slack Connect channel's envelope names the workspace it happened in
        log.info(
            "slack session stopped channel=%s thread=%s user=%s",
            event.get("channel"),
            event.get("thread_ts"),
            event.get("user"),
        )
        if not await handler.first_event(body):  # taken before the ack, as a mention's turn is
            log.info("slack session stopped again event_id=%s: already taken up", body.get("event_id"))
            return
        handler.spawn(handler.on_session_stopped(client, team, event), "session stopped", press=True)

    @app.event("assistant_thread_started")
    async def on_thread_started(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        # A DM thread opened in Slack's agent view: offer the prompts; its turns run against DEFAULT_TARGET.
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = str(thread.get("channel_id") or ""), str(thread.get("thread_ts") or "")
        log.info("slack agent thread started channel=%s thread=%s", channel, thread_ts)
        if channel and thread_ts and handler.prompts:
            handler.spawn(handler.sessions(client).suggest(channel, thread_ts, handler.prompts), "suggested prompts")

    @app.event("assistant_thread_context_changed")
    async def on_context_changed() -> None:
        """The channel a person views beside the agent view: the bridge has no use for it, but an app subscribed
        to it as Slack's agent-app guides say must acknowledge it, or Slack delivers it again."""

    @app.action(STOP_ACTION)
    async def on_stop_button(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        target = stop_target(str(action.get("value") or ""))
        user = str((body.get("user") or {}).get("id", ""))
        if target is None:
            return

        async def work() -> None:
            outcome = await handler.stop(client, str(context.team_id or ""), target[0], target[1], user)
            await respond(text=stop_answer(outcome), replace_original=True, response_type="ephemeral")
            await handler.say_untold(client, target[0], outcome)

        if not handler.spawn(work(), "stop button", press=True):
            await respond(text=RESTARTING, replace_original=False, response_type="ephemeral")
