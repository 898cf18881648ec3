"""What a turn says in its thread in the bridge's own words (as opposed to an agent's): the notices for an unbound
channel, a switched runner, nothing said, an empty reply, a deadline, a crash, a stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.slack.permissions import Policy, configurers

if TYPE_CHECKING:
    from bridge.config import Settings

# Read in Slack, by people who may have no shell on the bridge's host: the slash command, and who may use it.
UNBOUND = (
    "This channel is not connected to Letta agents yet: {who} can connect it here with `{command} connect`. "
    "Then mention me again."
)
DISCONNECTED = (
    "This channel was disconnected from Letta, so this was not answered: {who} can connect it again with "
    "`{command} connect`, then mention me again."
)
RECONNECT = " {who} can connect this channel to a group or agents that exist with `{command} connect`."
DEFAULT_GONE = (
    " The bridge's DEFAULT_TARGET setting names it, so an operator of the bridge needs to change DEFAULT_TARGET."
)
DEFAULT_UNUSABLE = (
    "Nothing can answer here right now: the bridge's default Letta target (`{target}`) cannot be used: {reason}"
)
ROUTE_SWITCH = (
    "This Letta server cannot run groups itself, so from now on the bridge runs this channel's group, "
    "asking each agent in turn."
)
SERVER_500_HINT = (
    " Letta 0.12.0 to 0.16.4 fail every group send; connecting the channel with `--runner bridge` avoids it."
)
NOTHING_SAID = "No agent had anything to say this time."
EMPTY_REPLY = "{agent} sent an empty reply."
REFUSED_PART = "Slack refused a message of {whose} ({error}), so that part is missing here."
DEADLINE_HINT = " The bridge stopped waiting: ask again, or ask an operator to check the Letta server."
CRASHED = "The bridge hit an unexpected error while running this turn; an operator can find it in the logs."
STOPPED_DRAFT = " _(stopped by <@{user}>)_"
STOPPED = "Stopped by <@{user}>."
# Only logged: the thread cannot be posted in. {why} is one of slack/post.py's CHANNEL_REFUSALS.
NOT_RUN = (
    "turn not run: {why}, so no answer could be posted; the question stays unanswered (unarchive the channel or "
    "invite the bot, then ask again)"
)


def not_finished_within(seconds: float) -> str:
    """The deadline notice's first sentence, the deadline in the unit a person would say it in."""
    if seconds >= 120:
        shown = f"{seconds / 60:g} minutes"
    else:
        shown = f"{seconds:g} second" + ("" if seconds == 1 else "s")
    return f"The agents did not finish within {shown}."


def who_configures(settings: Settings) -> str:
    """Who may connect a channel, in the words a thread reads (SLACK_CONFIGURE_BY)."""
    return configurers(Policy(settings.slack_configure_by, frozenset(settings.slack_configure_users)))


def reconnect(settings: Settings, target_gone: bool, bound_by: str) -> str:
    """How people in Slack connect the channel again when Letta no longer knows its agent or group ("" otherwise).
    A DM (or unbound channel) on the default target has no binding to connect: only the setting can change."""
    if not target_gone:
        return ""
    if bound_by == "default":
        return DEFAULT_GONE
    who = who_configures(settings)
    return RECONNECT.format(who=who[:1].upper() + who[1:], command=settings.slack_command)
