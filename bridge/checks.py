"""`python -m bridge check`: one line per setting and connection, in plain words."""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError

from bridge.check_line import Check
from bridge.checks_database import database_check, ephemeral_sqlite
from bridge.clients import letta_client, letta_kind_told, slack_client
from bridge.config import Settings
from bridge.config_file import config_readable_by_others
from bridge.letta.appserver.wire import PROTOCOL_VERSION
from bridge.letta.appserver_letta import AppServerLetta, ServerKind
from bridge.letta.chooser import RunnerUse, by_version, runner_for_version
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.logs import shown_url
from bridge.manifest import SCOPES
from bridge.requirements import (
    PLACEHOLDERS,
    SLACK_APP_TOKEN,
    SLACK_BOT_TOKEN,
    missing,
    slack_refused,
    wrong_kind,
    wrong_kinds,
)
from bridge.slack.failures import FAILURES, granted_scopes, slack_error
from bridge.slack.socket_mode import SLACK_SIDE, not_opened
from bridge.targets import TargetError, resolve_target


async def run_checks(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    # SLACK_APP_TOKEN set means Socket Mode may be how this bridge runs: `socket` needs no signing secret.
    socket = settings.slack_app_token is not None and not settings.oauth
    modes: tuple[Literal["serve", "socket"], ...] = ("serve", "socket") if socket else ("serve",)
    ready = [mode for mode in modes if not missing(settings, mode)]
    misfits = wrong_kinds(settings)  # a token in the wrong setting is wrong whichever mode runs
    if ready and not misfits:
        needs = " and ".join(f"`{mode}`" for mode in ready)
        checks.append(Check(True, "settings", f"everything {needs} need{'s' if len(ready) == 1 else ''} is set"))
    else:
        gaps = [] if ready else missing(settings, modes[-1])
        checks.extend(Check(False, "settings", gap) for gap in dict.fromkeys(gaps + misfits))
    if (loose := config_readable_by_others()) is not None:
        checks.append(Check(True, "config file", loose, warning=True))
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    if app_token is None:
        checks.append(Check(True, "socket mode", "SLACK_APP_TOKEN not set (only needed for `socket`)"))
    elif socket and app_token != PLACEHOLDERS[SLACK_APP_TOKEN.variable] and not wrong_kind(SLACK_APP_TOKEN, app_token):
        checks.append(await socket_check(settings))
    if settings.oauth:
        from bridge.workspace_admin import workspace_checks

        checks.extend(await workspace_checks(settings))
    else:
        checks.extend(await slack_checks(settings))
    told = await letta_kind_told(settings, lookups=True)
    letta, version = await _letta_checks(settings, told)
    checks.extend(letta)
    if settings.default_target and all(c.ok for c in letta) and not isinstance(told, LettaError):
        checks.append(await _default_target(settings, told))
    elif settings.default_target_in_channels and not settings.default_target:
        unused = "DEFAULT_TARGET_IN_CHANNELS is on, but without DEFAULT_TARGET it does nothing: set DEFAULT_TARGET"
        checks.append(Check(True, "default target", unused, warning=True))
    checks.append(await database_check(settings, version))
    if settings.database_url.startswith("sqlite:"):
        checks.extend(ephemeral_sqlite(dict(os.environ)))
    return checks


async def socket_check(settings: Settings) -> Check:
    """apps.connections.open with SLACK_APP_TOKEN, as `socket` asks it first (the URL it gives is left unused)."""
    assert settings.slack_app_token is not None
    try:
        await slack_client(settings, wait_out_limits=False).apps_connections_open(
            app_token=settings.slack_app_token.get_secret_value()
        )
    except SlackApiError as exc:
        error = slack_error(exc)
        passing = error == "ratelimited" or error in SLACK_SIDE  # Slack's doing, nothing against the settings
        return Check(passing, "socket mode", not_opened(error), warning=passing)
    except FAILURES as exc:
        return Check(False, "socket mode", slack_unreachable(settings, exc))
    return Check(True, "socket mode", "SLACK_APP_TOKEN accepted (apps.connections.open)")


async def slack_checks(settings: Settings) -> list[Check]:
    """auth.test with the bot token, then the scopes it was granted (also used by `init`)."""
    if settings.slack_bot_token is None:
        return [Check(False, "slack", "SLACK_BOT_TOKEN is not set, so Slack cannot be checked")]
    token = settings.slack_bot_token.get_secret_value()
    if token == PLACEHOLDERS[SLACK_BOT_TOKEN.variable]:
        why = f'is still the example\'s placeholder "{token}"'
        return [Check(False, "slack", f"SLACK_BOT_TOKEN {why}, so Slack cannot be checked")]
    if wrong_kind(SLACK_BOT_TOKEN, token):
        return [Check(False, "slack", "SLACK_BOT_TOKEN is not a bot token (see above), so Slack cannot be checked")]
    client = slack_client(settings)
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        return [Check(False, "slack", slack_refused(SLACK_BOT_TOKEN, slack_error(exc)))]
    except Exception as exc:
        return [Check(False, "slack", slack_unreachable(settings, exc))]
    who = f"as @{response.get('user')} in {response.get('team')} ({response.get('team_id')})"
    checks = [Check(True, "slack", f"auth.test {who}")]
    granted = granted_scopes(response)
    if granted is None:
        return [*checks, Check(True, "slack scopes", "Slack did not say which scopes the token has", warning=True)]
    return checks + scope_checks(set(granted))


ADD_SCOPES = (
    "in the Slack app settings > OAuth & Permissions > Scopes (or create the app from the manifest "
    "`python -m bridge init` prints), then reinstall the app to the workspace."
)


def scope_checks(granted: set[str]) -> list[Check]:
    """The bot scopes the bridge's manifest asks for, against those the token has: a required one missing fails,
    an optional one missing warns (and says what the bridge does without it)."""
    checks = []
    required = [s for s in SCOPES if not s.optional and s.name not in granted]
    if required:
        if len(required) <= 3:
            named = ", ".join(f"{s.name} ({s.purpose})" for s in required)
        else:
            named = ", ".join(s.name for s in required)
        them = "it" if len(required) == 1 else "them"
        checks.append(Check(False, "slack scopes", f"missing {named}. Add {them} {ADD_SCOPES}"))
    for scope in SCOPES:
        if scope.optional and scope.name not in granted:
            detail = (
                f"{scope.name} (optional) is not granted: {scope.without}. To {scope.purpose}, add it {ADD_SCOPES}"
            )
            checks.append(Check(True, "slack scopes", detail, warning=True))
    if not checks:
        checks.append(Check(True, "slack scopes", f"all {len(SCOPES)} the manifest asks for"))
    return checks


def slack_unreachable(settings: Settings, exc: BaseException) -> str:
    return (
        f"cannot reach Slack at {shown_url(settings.slack_api_url)} ({type(exc).__name__}): check this host's "
        "connection to the internet (a proxy or firewall), and SLACK_API_URL if you set it."
    )


async def letta_checks(settings: Settings, with_key: bool = True) -> list[Check]:
    """GET /v1/health/, then (with_key) a list call that the key must be accepted for, and the runner auto picks."""
    return (await _letta_checks(settings, await letta_kind_told(settings, lookups=True), with_key))[0]


async def _letta_checks(
    settings: Settings, told: ServerKind | LettaError, with_key: bool = True
) -> tuple[list[Check], str | None]:
    """The checks, and the server's version when it answered. `told`: the server's kind as asked once, or why it
    was not told; a server that let that question time out is said at once, so a Letta that never answers costs
    one LETTA_LOOKUP_TIMEOUT, not one more for the health check too."""
    if isinstance(told, LettaError) and told.kind is Kind.TIMEOUT:
        return [Check(False, "letta", told.for_operator("the health check"))], None
    kind = "rest" if isinstance(told, LettaError) else told  # unreached: the health check says why
    client = letta_client(settings, kind=kind, lookups=True)
    url = shown_url(settings.letta_base_url)
    if isinstance(client, AppServerLetta):
        try:
            return await _app_server_checks(client, url, with_key)
        finally:
            await client.aclose()
    try:
        try:
            version = (await client.health()).version
        except LettaError as exc:
            return [Check(False, "letta", _health_failed(exc, settings.letta_base_url))], None
        checks = [Check(True, "letta", f"reachable at {url}, version {version}")]
        if not with_key:
            return checks, version
        try:
            await client.list_agents(limit=1)
            checks.append(Check(True, "letta key", "accepted (listed agents)"))
        except LettaError as exc:
            # The calls after this one would fail the same way: one line says it.
            return [*checks, Check(False, "letta key", exc.for_operator("the agent list"))], version
        default = settings.letta_group_runner
        use = by_version(default, version) if default == "auto" else RunnerUse(default, default)
        if default == "server" and runner_for_version(version) == "bridge":
            checks.append(Check(True, "runner", (
                f"LETTA_GROUP_RUNNER=server on Letta {version}: its group send route fails from 0.12 and is gone "
                "from 0.16.5, so a channel bound to a group gets errors; leave it at auto (the bridge plays groups)"
            ), warning=True))
        else:
            checks.append(Check(True, "runner", f"LETTA_GROUP_RUNNER={use}"))
        if settings.letta_stream_tokens and not settings.letta_streaming:
            checks.append(Check(True, "streaming", (
                "LETTA_STREAM_TOKENS=true does nothing while LETTA_STREAMING=false: replies are posted whole"
            ), warning=True))
        checks.append(await _conversations(client, settings))
        return checks, version
    finally:
        await client.aclose()


async def _default_target(settings: Settings, kind: ServerKind) -> Check:
    """DEFAULT_TARGET looked up as a direct message's turn does: else ids that are none, or that Letta lacks, are
    found out by the first direct message only. `kind`: as the Letta checks found it (asked once)."""
    client = letta_client(settings, kind=kind, lookups=True)
    try:
        target = await resolve_target(client, settings.default_target)
    except TargetError as exc:
        return Check(False, "default target", f"DEFAULT_TARGET: {exc.for_operator}")
    finally:
        await client.aclose()
    who = f"group {target.group_id} answers" if target.group_id else "agents answer"
    where = "direct messages and unbound channels" if settings.default_target_in_channels else "direct messages"
    names = ", ".join(a.name for a in target.agents)
    return Check(True, "default target", f"{who} {where} ({names})")


def _health_failed(exc: LettaError, base_url: str) -> str:
    """Letta answers its health check without a key, and a route it lacks with 401 when it runs with a password:
    a 401 there from a URL with a path (`…/v1`) is the URL's fault, not the key's (which `init` has not asked for)."""
    if exc.kind is Kind.UNAUTHORIZED and urlsplit(base_url).path.strip("/"):
        return (
            f"the server at {shown_url(base_url)} refused the health check (HTTP {exc.status}), which a Letta server "
            "answers without a key: check that LETTA_BASE_URL is the Letta server's address, without /v1 or "
            "another path."
        )
    return exc.for_operator("the health check")


async def _app_server_checks(client: AppServerLetta, url: str, with_key: bool) -> tuple[list[Check], str | None]:
    """A Letta App Server: its version and protocol (GET /app-server-info, which the token must pass), then its
    agents over the WebSocket."""
    try:
        info = await client.describe()
    except LettaError as exc:
        if not with_key and exc.kind is Kind.UNAUTHORIZED:  # init's URL step: the server answered; the key is next
            why = f"it refused the token given (HTTP {exc.status}), checked next" if client.keyed else (
                "it needs its capability token"
            )
            return [Check(True, "letta", f"Letta App Server reachable at {url}; {why}")], None
        return [Check(False, "letta", exc.for_operator("GET /app-server-info"))], None
    protocol = f"protocol {info.protocol_version}"
    if not info.protocol_supported:
        protocol += f" (the bridge speaks protocol {PROTOCOL_VERSION}: replies may not be read right)"
    reached = f"Letta App Server reachable at {url}, version {info.version}, {protocol}"
    checks = [Check(info.protocol_supported, "letta", reached, warning=not info.protocol_supported)]
    if not with_key:
        return checks, info.version
    try:
        agents = await client.all_agents()
    except LettaError as exc:
        return [*checks, Check(False, "letta key", exc.for_operator("the agent list"))], info.version
    auth = "accepted" if client.keyed else "not needed (no LETTA_API_KEY; the server asked for none)"
    checks.append(Check(True, "letta key", f"{auth}; {len(agents)} agents on the server"))
    checks.append(Check(True, "runner", "the App Server has no groups: the bridge asks a channel's agents in turn"))
    threads = "each Slack thread is an App Server conversation per agent; threads run in parallel"
    checks.append(Check(True, "conversations", threads))
    return checks, info.version


async def _conversations(client: LettaClient, settings: Settings) -> Check:
    """Whether each Slack thread can be a Letta conversation, or every thread shares each agent's one context."""
    try:
        has = await client.has_conversations()
    except LettaError as exc:
        return Check(False, "conversations", exc.for_operator("the conversation list"))
    if not has:
        return Check(
            True,
            "conversations",
            "this server has none: the bridge keeps one context per agent for all threads of a channel, "
            "and runs a channel's turns one at a time",
        )
    if not settings.letta_conversations:
        return Check(True, "conversations", "the server has them, but LETTA_CONVERSATIONS=false: one context per agent")
    off = ", ".join(settings.letta_conversations_except)
    return Check(
        True,
        "conversations",
        "each Slack thread is a Letta conversation per agent (bridge-run channels); threads run in parallel"
        + (f"; off in {off}" if off else ""),
    )
