"""The ids a channel command is given on the host, checked before anything is saved: the channel's form, and the
workspace (--team) against what this bridge serves (the bot token's workspace, or in OAuth mode one that installed
the app, whose own Letta server the agents are then looked up on)."""

from __future__ import annotations

import re

from slack_sdk.errors import SlackApiError

from bridge.config import Settings
from bridge.requirements import SLACK_BOT_TOKEN, slack_refused

CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
TEAM_ID = re.compile(r"T[A-Z0-9]{2,}")
INSTALL_ID = re.compile(r"[TE][A-Z0-9]{2,}")


class CliError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def team_arg(value: str | None) -> str | None:
    """--team as Slack writes a workspace id (upper case); refused in its form before anything is asked."""
    if value is None:
        return None
    team = value.strip().upper()
    if not TEAM_ID.fullmatch(team):
        raise CliError(f"{value} is not a Slack workspace id (like T0123ABC: `python -m bridge check` shows it).", 2)
    return team


def install_arg(value: str) -> str:
    """`workspaces remove`'s id as Slack writes it (upper case): a workspace (T…) or an org-wide install (E…)."""
    key = value.strip().upper()
    if not INSTALL_ID.fullmatch(key):
        raise CliError(f"{value} is not a Slack workspace id (like T0123ABC) or org id (like E0123ABC): "
                       "`python -m bridge workspaces list` shows them.", 2)
    return key


async def workspace_of(settings: Settings, given: str | None) -> str:
    """The workspace a channel command is about: --team, checked against what this bridge serves (the bot token's
    workspace; in OAuth mode, one that installed the app), else the bot token's."""
    team = team_arg(given)
    if settings.oauth:
        if team is None:
            raise CliError("This bridge serves many workspaces (OAuth mode): say which with --team T0123ABC "
                           "(`python -m bridge workspaces list` shows them).", 2)
        return team
    if team is None and settings.slack_bot_token is None:
        raise CliError("SLACK_BOT_TOKEN is needed to learn the workspace (or pass --team T0123ABC).", 2)
    if settings.slack_bot_token is None:
        return str(team)
    from bridge.checks import slack_unreachable
    from bridge.clients import slack_client
    from bridge.slack.failures import slack_error

    try:
        response = await slack_client(settings).auth_test()
    except SlackApiError as exc:
        if team is not None:
            return team  # not checked: the token is said wrong where the bridge uses it
        raise CliError(slack_refused(SLACK_BOT_TOKEN, slack_error(exc))) from None
    except Exception as exc:
        if team is not None:
            return team  # not checked: Slack cannot be reached from here now
        raise CliError(slack_unreachable(settings, exc)) from None
    served = str(response["team_id"])
    if team is not None and team != served:
        raise CliError(f"--team {team} is not the workspace this bridge serves: SLACK_BOT_TOKEN is {served}'s, and "
                       "a channel of another workspace would never be answered.", 2)
    return served


async def served_as(settings: Settings, team: str) -> Settings:
    """OAuth mode: the settings the workspace is served with (its own Letta server, if it set one)."""
    if not settings.oauth:
        return settings
    from bridge.workspace_admin import served_settings

    served = await served_settings(settings, team)
    if served is None:
        raise CliError(f"{team} has not installed the app (`python -m bridge workspaces list` shows them).")
    return served


def channel_arg(value: str) -> str:
    if not CHANNEL_ID.fullmatch(value):
        raise CliError(f"{value} is not a Slack channel id (like C0123ABC: open the channel details, About tab).", 2)
    return value
