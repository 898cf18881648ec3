"""The /letta slash command and its menu's actions.

Each request is acknowledged at once (Slack allows 3 seconds; Bolt runs with `process_before_response`), then
the permission check and the Letta lookups run in a task the bridge owns, and the answer goes to the request's
`response_url`. Parsing, permissions and wording are pure (`slack/commands.py`, `slack/permissions.py`,
`slack/blocks.py`); binding is `bridge.configure`'s job.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.configure import ConfigError, Configurator
from bridge.keyed_locks import KeyedLocks
from bridge.logs import shown_url
from bridge.slack import blocks, menu
from bridge.slack.blocks import Message
from bridge.slack.commands import Command, Usage, parse
from bridge.slack.listeners.sessions import StopHandler, stop_answer
from bridge.slack.member_facts import MEMBER_LOOKUP_WAIT, bounded, member_facts
from bridge.slack.permissions import Member, Policy, may_configure, needs_lookup, who_may_configure
from bridge.tasks import RESTARTING, Tasks

log = logging.getLogger(__name__)

SETUP_SINGLE = (
    "This bridge serves one workspace, with the Letta server its operator set (LETTA_BASE_URL); `setup` is for "
    "bridges installed in many workspaces."
)
# Past this the caller is told, rather than left waiting on a Letta server that does not answer.
COMMAND_DEADLINE = 60.0
ANNOUNCE_SECONDS = 5  # the channel's notice of a saved change: past it, the answer says it may not have shown
ANNOUNCE_WAIT = 15.0  # the notice's rate-limit waits included: the change is saved, COMMAND_DEADLINE is Letta's


# COMMAND_DEADLINE is Letta's: the time a command spends waiting on Slack (its rights looked up, its notice posted,
# rate limits waited out) moves it on, so that a slow Slack is not said to be a Letta server that did not answer.
LETTA_DEADLINE: ContextVar[asyncio.Timeout | None] = ContextVar("letta_deadline", default=None)


@asynccontextmanager
async def slack_time(most: float) -> AsyncIterator[None]:
    """Slack's part of a command, at most `most` seconds: the deadline moved on by `most` before it (so that it
    cannot fall inside), and back by what was not used after."""
    deadline = LETTA_DEADLINE.get()
    when = deadline.when() if deadline is not None and not deadline.expired() else None
    loop = asyncio.get_running_loop()
    started = loop.time()
    if deadline is not None and when is not None:
        deadline.reschedule(when + most)
    try:
        yield
    finally:
        if deadline is not None and when is not None and not deadline.expired():
            deadline.reschedule(when + min(most, loop.time() - started))


@dataclass(frozen=True)
class Invocation:
    """Who asked, where: bindings are keyed by workspace and channel."""

    team_id: str
    channel_id: str
    user_id: str
    bot_user_id: str = ""  # the app's own user, to name it as Slack shows it (`<@U…>`)

    @property
    def me(self) -> str:
        return f"<@{self.bot_user_id}>" if self.bot_user_id else "@letta"


def same_workspace(context: AsyncBoltContext, many: bool = False) -> bool:
    """The request's workspace must be the bot token's (auth.test); another workspace reads and changes nothing.
    With many workspaces (OAuth mode), it must be one that installed the app (Bolt found its installation)."""
    auth = context.authorize_result
    if many:
        return auth is not None and bool(context.team_id)
    return auth is not None and bool(context.team_id) and auth.team_id == context.team_id


# OAuth mode: each workspace's own Configurator (its Letta server), and /letta setup's modal.
Configurators = Callable[[str], Awaitable[Configurator]]
Setup = Callable[[AsyncAck, dict[str, Any], AsyncBoltContext, AsyncWebClient, AsyncRespond], Awaitable[None]]


class CommandHandler:
    def __init__(
        self,
        configurator: Configurator,
        tasks: Tasks,
        configurators: Configurators | None = None,
        setup: Setup | None = None,
        stops: StopHandler | None = None,
    ) -> None:
        settings = configurator.settings
        self.name = settings.slack_command
        self._configurator = configurator
        self._configurators = configurators
        self._setup = setup
        self._changing = KeyedLocks()  # per workspace and channel: its changes one at a time
        self._tasks = tasks
        self._stops = stops
        self._policy = Policy(settings.slack_configure_by, frozenset(settings.slack_configure_users))
        self._catalog = settings.slack_catalog

    async def _for(self, team_id: str) -> Configurator:
        if self._configurators is None:
            return self._configurator
        return await self._configurators(team_id)

    async def on_command(
        self,
        ack: AsyncAck,
        command: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        if not same_workspace(context, many=self._configurators is not None):
            log.warning("command from another workspace refused team=%s", command.get("team_id"))
            await ack(**blocks.foreign_workspace().payload())
            return
        parsed = parse(str(command.get("text", "")))
        if isinstance(parsed, Usage):
            await ack(**blocks.usage(self.name, parsed.problem).payload())
            return
        if parsed.action == "setup":
            if self._setup is None:
                await ack(text=SETUP_SINGLE)
            else:
                await self._setup(ack, command, context, client, respond)
            return
        await ack()
        who = Invocation(
            str(context.team_id), str(command.get("channel_id", "")), str(command.get("user_id", "")),
            str(context.bot_user_id or ""),
        )
        log.info(
            "command team=%s channel=%s user=%s action=%s", who.team_id, who.channel_id, who.user_id, parsed.action
        )
        await self._start(parsed, who, client, respond, replace=False)

    async def on_choice(
        self,
        body: dict[str, Any],
        command: Command,
        context: AsyncBoltContext,
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        """A pick in the menu (already acked): bind it, or show the agent picker, replacing the menu."""
        if not same_workspace(context, many=self._configurators is not None):
            log.warning("menu choice from another workspace refused team=%s", context.team_id)
            await respond(**blocks.foreign_workspace().payload(), replace_original=True)
            return
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
        who = Invocation(
            str(context.team_id), str(channel), str((body.get("user") or {}).get("id", "")),
            str(context.bot_user_id or ""),
        )
        await self._start(command, who, client, respond, replace=True)

    async def _start(
        self, command: Command, who: Invocation, client: AsyncWebClient, respond: AsyncRespond, replace: bool
    ) -> None:
        """Run the command after the ack, in a task the bridge owns; when stopping, say so instead."""
        work = self._answer(command, who, client, respond, replace)
        if not self._tasks.spawn(work, name=f"command {command.action}"):
            await respond(text=RESTARTING, replace_original=False)

    async def _answer(
        self, command: Command, who: Invocation, client: AsyncWebClient, respond: AsyncRespond, replace: bool
    ) -> None:
        try:
            # A channel's changes take effect in the order they came: a connect still checking its agents with
            # Letta when a disconnect came would otherwise save after it, and the channel end up connected.
            async with self._changing.hold(f"{who.team_id}/{who.channel_id}") if command.changes else nullcontext():
                async with asyncio.timeout(COMMAND_DEADLINE) as deadline:
                    LETTA_DEADLINE.set(deadline)  # this command's task's own: Slack's waits move it on
                    message = await self._run(command, who, client)
        except TimeoutError:
            # A command that changes nothing (`agents`, `status`) has nothing to look at again: it is asked again.
            changed = f"`{self.name} status` shows whether anything changed."
            then = changed if command.changes else "Ask again in a moment."
            message = Message(
                f"The Letta server did not answer within {COMMAND_DEADLINE:g} seconds, so I stopped waiting. {then}"
            )
        except ConfigError as exc:
            # A command that changes nothing (`agents`, `status`) is not told that nothing was changed.
            message = blocks.problem(str(exc)) if command.changes else Message(blocks.sentence(str(exc)))
            replace = False  # nothing changed: a menu stays, with what was picked, to be put right
        except Exception:
            log.exception("command crashed")
            message = Message("The bridge hit an unexpected error. An operator can find it in the logs.")
        try:
            await respond(**message.payload(), response_type="ephemeral", replace_original=replace)
        except Exception as exc:  # an expired or used-up response_url: nobody is left to tell
            log.warning("could not answer through response_url error=%s", type(exc).__name__)

    async def _run(self, command: Command, who: Invocation, client: AsyncWebClient) -> Message:
        if command.changes:
            refusal = await self._refusal(who, client)
            if refusal is not None:
                return refusal
        cfg = await self._for(who.team_id)
        url = shown_url(cfg.settings.letta_base_url)  # said in Slack: never its user and password
        if command.action == "stop" and self._stops is not None:
            # Slash commands cannot be run inside a thread: this stops the channel's turns the caller may stop.
            outcome = await self._stops.stop(client, who.team_id, who.channel_id, None, who.user_id)
            await self._stops.say_untold(client, who.channel_id, outcome)
            return Message(stop_answer(outcome, channel_wide=True))
        if command.action == "status":
            return blocks.status(await cfg.status(who.team_id, who.channel_id), self.name)
        if command.action in ("groups", "agents"):
            details = True
            if self._catalog != "everyone":
                refusal = await self._refusal(who, client, listing=True)
                if refusal is not None and self._catalog == "configurers":
                    return refusal
                details = refusal is None
            listing = blocks.groups_list if command.action == "groups" else blocks.agents_list
            return listing(await cfg.catalog(), shown_url(url), self.name, details)
        if command.action == "disconnect":
            previous = await cfg.disconnect(who.team_id, who.channel_id, actor=who.user_id)
            message = blocks.disconnected(previous, self.name)
            if previous is not None:
                notice = blocks.disconnect_notice(who.user_id, previous)
                message = await self._announce(client, who, notice, message, connected=False)
            return message
        if not command.ids:
            cfg.bindable(who.channel_id)  # a menu whose every pick would be refused is not offered
            return menu.menu(await cfg.catalog(), url, self.name, agents=command.agents_menu)
        result = await cfg.connect(
            who.team_id, who.channel_id, command.ids, actor=who.user_id, runner=None, pattern=command.pattern
        )
        if result.unchanged:
            return blocks.connected(result)
        notice = blocks.connect_notice(who.user_id, result.binding.target)
        return await self._announce(client, who, notice, blocks.connected(result))

    async def _refusal(self, who: Invocation, client: AsyncWebClient, listing: bool = False) -> Message | None:
        member = Member(who.user_id)
        if needs_lookup(who.user_id, self._policy):
            async with slack_time(MEMBER_LOOKUP_WAIT):
                member = await member_facts(client, who.user_id, who.channel_id, self._policy.by == "creator")
        if may_configure(member, self._policy):
            return None
        log.info("configuration refused team=%s channel=%s user=%s", who.team_id, who.channel_id, who.user_id)
        rule = who_may_configure(self._policy)
        return blocks.refused(rule, self.name, member.admin_unknown, member.creator_unknown, listing, who.me)

    async def _announce(
        self, client: AsyncWebClient, who: Invocation, notice: str, answer: Message, connected: bool = True
    ) -> Message:
        """One visible line in the channel; if Slack refuses it, the caller's answer says so."""
        try:  # the change is saved: a slow or rate-limiting Slack is never blamed on Letta's deadline
            async with slack_time(ANNOUNCE_WAIT), asyncio.timeout(ANNOUNCE_WAIT):
                await bounded(client, ANNOUNCE_SECONDS).chat_postMessage(
                    channel=who.channel_id, text=notice, unfurl_links=False, unfurl_media=False
                )
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown"))
            log.warning("slack chat.postMessage failed channel=%s error=%s", who.channel_id, error)
            return Message(answer.text + blocks.notice_failed(error, who.me, connected), answer.blocks)
        except Exception as exc:  # no answer from Slack (a dropped connection, a timeout): the change is saved
            error = type(exc).__name__
            log.warning("slack chat.postMessage outcome unknown channel=%s error=%s", who.channel_id, error)
            return Message(answer.text + blocks.NOTICE_UNKNOWN, answer.blocks)
        return answer


def register(
    app: AsyncApp,
    configurator: Configurator,
    tasks: Tasks,
    configurators: Configurators | None = None,
    setup: Setup | None = None,
    stops: StopHandler | None = None,
) -> None:
    handler = CommandHandler(configurator, tasks, configurators, setup, stops)

    @app.command(handler.name)
    async def on_command(
        ack: AsyncAck,
        command: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await handler.on_command(ack, command, context, respond, client)

    @app.action(re.compile(f"^({menu.PICK_GROUP}|{menu.CONNECT_AGENTS}|{menu.SHOW_AGENTS})$"))
    async def on_choice(
        ack: AsyncAck,
        body: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        choice = menu.chosen(body)
        if isinstance(choice, str):  # the menu stays, to be put right
            await respond(text=f"{choice} Nothing was changed.", replace_original=False)
            return
        command = Command("connect", choice.ids, choice.pattern, agents_menu=choice.agents_menu)
        await handler.on_choice(body, command, context, respond, client)

    @app.action(re.compile(f"^({'|'.join(menu.SELECTS)})$"))
    async def on_select(ack: AsyncAck) -> None:
        await ack()  # the choice is read from the menu's state when Connect is pressed

    @app.action(menu.CANCEL)
    async def on_cancel(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await respond(delete_original=True)
