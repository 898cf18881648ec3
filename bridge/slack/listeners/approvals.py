"""An approval card's buttons and the Deny modal. Approve is acknowledged at once and decided in a task the bridge
owns; Deny opens a modal for a short reason at once, Slack not asked who may decide (its trigger lives 3 s, which
users.info may take longer than), and the submitted reason is acknowledged at once, closing the modal (Slack wants
that within 3 s too), then decided in such a task like Approve. Anyone who may not decide is told so in the card's
thread, only them, and nothing changes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bridge.approval_desk import ApprovalDesk
from bridge.slack.approvals import (
    APPROVE_ACTION,
    DENY_ACTION,
    DENY_VIEW,
    deny_view,
    read_press,
    read_reason,
)
from bridge.slack.failures import FAILURES, slack_error
from bridge.slack.listeners.sessions import configurer_check
from bridge.slack.modals import open_modal
from bridge.slack.permissions import Policy
from bridge.store.approvals import Approval
from bridge.tasks import RESTARTING, Tasks

log = logging.getLogger(__name__)


def register(app: AsyncApp, desk: ApprovalDesk, tasks: Tasks, policy: Policy) -> None:
    def configurer(client: AsyncWebClient, user: str) -> Callable[[str], Awaitable[bool]]:
        async def check(channel: str) -> bool:
            return await configurer_check(client, policy, user, channel)()

        return check

    def spawn(work: Coroutine[Any, Any, None], name: str) -> bool:
        """Run a press after its ack, also while the turns have their grace (a turn may wait for it); False once
        the bridge takes none."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("approval %s failed", name)

        if not tasks.spawn(run(), name=name, while_stopping=True):
            work.close()
            log.info("approval %s not run: the bridge is stopping", name)
            return False
        return True

    async def tell(client: AsyncWebClient, body: dict[str, Any], user: str, text: str) -> None:
        channel = str((body.get("channel") or {}).get("id") or "")
        thread = str(((body.get("message") or {}).get("thread_ts")) or "") or None
        await tell_in(client, channel, thread, user, text)

    async def tell_in(client: AsyncWebClient, channel: str, thread: str | None, user: str, text: str) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread, text=text)
        except FAILURES as exc:
            log.info("slack chat.postEphemeral failed error=%s", slack_error(exc))

    def pressed(body: dict[str, Any], context: AsyncBoltContext) -> tuple[int | None, str, str]:
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id", ""))
        return read_press(str(action.get("value") or "")), user, str(context.team_id or "")

    @app.action(APPROVE_ACTION)
    async def on_approve(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await ack()
        approval, user, team = pressed(body, context)
        if approval is None or not user:
            return

        async def work() -> None:
            told = await desk.press(client, team, user, approval, "approve", "", configurer(client, user))
            if told is not None:
                await tell(client, body, user, told)

        if not spawn(work(), "approve"):
            await tell(client, body, user, RESTARTING)

    @app.action(DENY_ACTION)
    async def on_deny(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        arrived = time.monotonic()  # the press's trigger_id lives 3 s from about now
        await ack()
        approval, user, team = pressed(body, context)
        if approval is None or not user:
            return

        async def work() -> None:
            row = await desk.allowed(team, user, approval, None)  # who may decide is asked of Slack on submit
            if not isinstance(row, Approval):
                await tell(client, body, user, row)
                return
            view = deny_view(row.id, row.asked.tool_name)  # nothing slow ran before: the trigger still lives
            trigger = body.get("trigger_id")
            failed = await open_modal(client, trigger, view, arrived, "the Deny form", "press Deny again")
            if failed is not None:
                await tell(client, body, user, failed)

        if not spawn(work(), "deny"):
            await tell(client, body, user, RESTARTING)

    @app.view(DENY_VIEW)
    async def on_reason(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        await ack()  # closes the modal; the decision follows in a task, as users.info may take past Slack's 3 s
        reason = read_reason(body.get("view") or {})
        user = str((body.get("user") or {}).get("id", ""))
        if reason is None or not user:
            return
        team = str(context.team_id or "")

        async def told(text: str) -> None:
            """In the card's thread, which the modal's submission does not name."""
            row = await desk.store.get(reason.approval_id)
            if row is None or row.asked.team_id != team:
                log.info("approval deny refusal not shown approval_id=%s: no card", reason.approval_id)
                return
            await tell_in(client, row.asked.channel_id, row.asked.thread_ts, user, text)

        async def work() -> None:
            refused = await desk.press(
                client, team, user, reason.approval_id, "deny", reason.text, configurer(client, user)
            )
            if refused is not None:
                await told(refused)

        if not spawn(work(), "deny reason"):
            await told(RESTARTING)
