"""OAuth mode's Slack surfaces: `/letta setup` (a modal where a workspace's admins set its Letta server and key)
and the events that end an installation (`app_uninstalled`, `tokens_revoked`).

The key typed in the modal is never shown again: the modal opens with the URL only, and neither the answer nor
any log line repeats the key. It is checked against the server before it is saved (encrypted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bridge.logs import shown_url
from bridge.slack.listeners.commands import Setup
from bridge.slack.member_facts import member_facts
from bridge.slack.modals import open_modal
from bridge.slack.permissions import Member, Policy, may_configure
from bridge.tasks import RESTARTING, Tasks

if TYPE_CHECKING:
    from bridge.workspaces import Workspaces

log = logging.getLogger(__name__)

SETUP_VIEW = "letta_setup"
URL_BLOCK, URL_INPUT = "letta_url", "url"
KEY_BLOCK, KEY_INPUT = "letta_key", "key"
ADMINS = Policy("admins", frozenset())
ADMINS_ONLY = "Only workspace admins and owners can set this workspace's Letta server."
NOT_CONFIRMED = "Slack did not confirm in time that you are a workspace admin or owner; try again in a moment."
ADMIN_CHECK_SECONDS = 1.0  # of Slack's 3 for the answer; the Letta check has what is left


def setup_view(current: str, own: bool, default: str) -> dict[str, Any]:
    """The form; the default server's user and password are the bridge operator's, never shown to a workspace,
    and the workspace's own are never sent back to Slack either: the input shows them masked, and a URL submitted
    as shown keeps them (Workspaces.save_letta)."""
    default = shown_url(default)
    url: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": URL_INPUT,
        "placeholder": {"type": "plain_text", "text": default[:150]},
    }
    if own:
        url["initial_value"] = shown_url(current)
    where = f"this workspace's own server, {shown_url(current)}" if own else f"the bridge's default server, {default}"
    return {
        "type": "modal",
        "callback_id": SETUP_VIEW,
        "title": {"type": "plain_text", "text": "Letta server"},
        "submit": {"type": "plain_text", "text": "Check and save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"This workspace uses {where}."}},
            {
                "type": "input",
                "block_id": URL_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Server URL (empty: the bridge's default)"},
                "element": url,
            },
            {
                "type": "input",
                "block_id": KEY_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "API key (stored encrypted, never shown again)"},
                "hint": {"type": "plain_text", "text": "Left empty for the server already saved, its key is kept."},
                "element": {"type": "plain_text_input", "action_id": KEY_INPUT},
            },
        ],
    }


def done_view(url: str, default: str, bound: int = 0, command: str = "/letta") -> dict[str, Any]:
    """`bound`: the workspace's connected channels, when the server changed: their agents were checked against the
    server before, and mentions there fail until they are connected to the new one's; `command`: SLACK_COMMAND."""
    said = f"This workspace now uses the Letta server at {shown_url(url)}." if url else (
        f"This workspace now uses the bridge's default Letta server, {shown_url(default)}."
    )
    said += " The key was checked first."
    if bound:
        said += (
            f" {bound} channel{'s are' if bound != 1 else ' is'} still connected to the previous server's "
            f"(or account's) agents or groups: run `{command} status` in {'each' if bound != 1 else 'it'} and connect "
            f"{'them' if bound != 1 else 'it'} again to this server's, or mentions there will fail."
        )
    return {
        "type": "modal",
        "callback_id": SETUP_VIEW + "_done",
        "title": {"type": "plain_text", "text": "Letta server"},
        "close": {"type": "plain_text", "text": "Done"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": said}}],
    }


def _value(view: dict[str, Any], block: str, action: str) -> str:
    state = ((view.get("state") or {}).get("values") or {}).get(block) or {}
    return str((state.get(action) or {}).get("value") or "").strip()


async def _is_admin(client: AsyncWebClient, user_id: str) -> bool | None:
    """None when Slack did not say within ADMIN_CHECK_SECONDS (slow, or a rate limit the client would wait out):
    Slack's 3 seconds for the answer must not run out on the check."""
    try:
        async with asyncio.timeout(ADMIN_CHECK_SECONDS):
            member = await member_facts(client, user_id, "", False) if user_id else Member(user_id)
    except TimeoutError:
        log.warning("slack users.info did not answer within %gs user=%s", ADMIN_CHECK_SECONDS, user_id)
        return None
    return may_configure(member, ADMINS)


def register(app: AsyncApp, workspaces: Workspaces, tasks: Tasks) -> Setup:
    """The listeners; returns what `/letta setup` runs (commands.py calls it)."""
    default, command = workspaces.settings.letta_base_url, workspaces.settings.slack_command

    async def show_form(
        team: str, trigger_id: Any, arrived: float, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        current, own = await workspaces.letta_of(team)
        view = setup_view(current, own, default)
        failed = await open_modal(client, trigger_id, view, arrived, "the setup form", f"run `{command} setup` again")
        if failed is not None:  # acknowledged empty already: without this the admin would see nothing at all
            await respond(text=failed, response_type="ephemeral")

    async def open_setup(
        ack: AsyncAck,
        command: dict[str, Any],
        context: AsyncBoltContext,
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        arrived = time.monotonic()  # the command's trigger_id lives 3 s from about now
        user = str(command.get("user_id", ""))
        admin = await _is_admin(client, user)
        if not admin:
            log.info("letta setup refused team=%s user=%s", context.team_id, user)
            await ack(text=(ADMINS_ONLY if admin is False else NOT_CONFIRMED) + " Nothing was changed.")
            return
        # The ack is sent when this listener returns (process_before_response): the form is opened after it, in a
        # task, so that a slow or rate-limited views.open cannot keep Slack's 3 seconds waiting.
        form = show_form(str(context.team_id), command.get("trigger_id"), arrived, client, respond)
        if not tasks.spawn(form, name="letta setup form"):
            await ack(text=RESTARTING)
            return
        await ack()

    @app.view(SETUP_VIEW)
    async def on_setup(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        user = str((body.get("user") or {}).get("id", ""))
        team = str(context.team_id or "")
        began = time.monotonic()
        admin = await _is_admin(client, user)
        if not admin:
            await ack(response_action="errors", errors={URL_BLOCK: ADMINS_ONLY if admin is False else NOT_CONFIRMED})
            return
        url, key = _value(view, URL_BLOCK, URL_INPUT), _value(view, KEY_BLOCK, KEY_INPUT)
        # A server is its URL and key (on Letta Cloud every workspace has the same URL, and the key is the account):
        # a new key on the same URL leaves the channels connected to agents the new key may not reach.
        before = await workspaces.server_of(team)
        problem = await workspaces.save_letta(team, url, key, user, spent=time.monotonic() - began)
        if problem is not None:
            await ack(response_action="errors", errors={KEY_BLOCK if key else URL_BLOCK: problem[:2000]})
            return
        moved = await workspaces.server_of(team) != before
        bound = len(await workspaces.store.list_bindings(team)) if moved else 0
        await ack(response_action="update", view=done_view(url.rstrip("/"), default, bound, command))

    async def removed(context: AsyncBoltContext, body: dict[str, Any], why: str) -> None:
        team, enterprise = context.team_id, context.enterprise_id
        found = await workspaces.installs.installed(team or "", enterprise or "")
        happened = body.get("event_time")
        if found is not None and isinstance(happened, int | float):
            since = await workspaces.installs.installed_since(found)
            if since is not None and int(since) > happened:
                # A late delivery (Slack retries for an hour): the tokens it speaks of were replaced since. Slack's
                # event_time is in whole seconds: an event of the install's own second is taken as it says.
                log.info("slack event ignored: %s, but it came before the workspace installed the app again "
                         "team=%s event_time=%s installed_at=%.0f", why, team or enterprise, happened, since)
                return
        teams = await workspaces.installs.workspaces_of(found) if found is not None else []
        if team and team not in teams:
            teams.append(team)
        await workspaces.installs.async_delete_all(enterprise_id=enterprise, team_id=team)
        org = enterprise or (found.enterprise_id if found is not None else "")
        teams = await workspaces.installs.unserved(teams, org)
        if teams:
            await workspaces.removed(teams, why)
        else:
            log.info("workspace still served by its org's install: %s team=%s", why, team)

    @app.event("app_uninstalled")
    async def on_uninstalled(body: dict[str, Any], context: AsyncBoltContext) -> None:
        await removed(context, body, "the app was uninstalled")

    @app.event("tokens_revoked")
    async def on_revoked(event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        if (event.get("tokens") or {}).get("bot"):
            await removed(context, body, "the bot token was revoked")
        else:  # user tokens only: the bridge keeps none
            log.info("slack user tokens revoked team=%s (none are kept)", context.team_id)

    return open_setup


def register_single(app: AsyncApp) -> None:
    """Single-workspace mode hears the same events (the manifest subscribes to them): the bot token in the
    environment no longer works, which only the operator can mend, so it is said plainly in the log."""

    @app.event("app_uninstalled")
    async def on_uninstalled(context: AsyncBoltContext) -> None:
        log.error(
            "the Slack app was uninstalled from workspace %s: SLACK_BOT_TOKEN no longer works; reinstall the app "
            "and set its new bot token",
            context.team_id,
        )

    @app.event("tokens_revoked")
    async def on_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
        if (event.get("tokens") or {}).get("bot"):
            log.error(
                "the bot token of workspace %s was revoked: SLACK_BOT_TOKEN no longer works; reinstall the app and "
                "set its new bot token",
                context.team_id,
            )

