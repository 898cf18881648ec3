"""Slack's failures, and what each means for what the bridge does next: a refusal that lasts until someone acts
(PERMANENT; of the channel itself, CHANNEL_REFUSALS), one of a message for what it holds (REFUSED; of its blocks
only, BLOCKS_REFUSED), one that may pass (Slack's trouble, a rate limit, the way there), and one whose outcome is
unknown (a 5xx, a timeout: the call may have been done). Slack's error code read out of a failure; the scopes an
answer says its token was granted; whether Slack answers at all now.
"""

from __future__ import annotations

from typing import Any, Literal

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

# The post can never succeed until someone acts: invite the bot, reinstall the app, restore the channel.
PERMANENT = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "token_revoked",
        "invalid_auth",
        "account_inactive",
        "not_authed",
        "missing_scope",
        "restricted_action",
    }
)
# Slack refusing the token itself (revoked, the app uninstalled, expired): nothing it is asked will work until
# someone reinstalls the app, so a turn waiting for Slack ends failed rather than waiting on.
TOKEN_REFUSALS = frozenset({"invalid_auth", "token_revoked", "token_expired", "account_inactive", "not_authed"})
# Refusals of a method for the whole app (its scope, its kind of app, the method off): asking again elsewhere
# cannot help, unlike a refusal of one channel or thread.
METHOD_REFUSED = frozenset(
    {"missing_scope", "unknown_method", "method_deprecated", "not_allowed_token_type", "no_permission",
     "access_denied", "feature_not_enabled"}
)
# A refusal of the channel itself (not of the token): archived, the bot removed, or gone. In words, for the log.
CHANNEL_REFUSALS = {
    "is_archived": "the channel is archived",
    "not_in_channel": "the bot is no longer in the channel",
    "channel_not_found": "the channel was deleted, or it is private and the bot was removed from it",
}
# Slack refusing a message for what it holds (chat.postMessage's errors in reference/slack/web-api).
REFUSED = frozenset(
    {
        "msg_too_long",
        "msg_blocks_too_long",
        "invalid_blocks",
        "invalid_blocks_format",
        "too_many_attachments",
        "no_text",
        "markdown_text_conflict",
        "invalid_arguments",
    }
)
# Slack's refusals of a message's blocks (reference/slack/limits.md): its text is posted without them instead.
BLOCKS_REFUSED = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})


class SlackPostError(Exception):
    def __init__(self, method: str, error: str, unknown: bool = False) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.unknown = unknown  # not refused: Slack may have taken it, and the thread could not be read to tell

    @property
    def permanent(self) -> bool:
        return self.error in PERMANENT

    @property
    def unavailable(self) -> bool:
        """Slack was down rather than refusing (a 5xx, internal_error, service_unavailable, the connection, a
        timeout, a rate limit past its waits): the same post may land once Slack answers again, so the turn waits
        for it (turn_runs.py)."""
        return self.unknown or self.error in PASSING_ERRORS

    @property
    def refused(self) -> bool:
        """Slack refused this message for what it holds: the same message would be refused again, another not."""
        return self.error in REFUSED


# Every way a Slack call can fail (SlackApiError is a SlackClientError).
FAILURES = (TimeoutError, SlackClientError, aiohttp.ClientError, OSError)


# Slack's own failures that "may have succeeded in part" (its docs), said in a body, often with HTTP 200.
HALF_DONE = frozenset({"internal_error", "fatal_error"})


# Connection failures before anything was sent: Slack certainly did not do the call.
UNSENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def unsent(exc: BaseException | None) -> bool:
    """The call never reached Slack (the connection did not open), so making it again cannot do it twice."""
    return isinstance(exc, UNSENT)


def outcome_unknown(exc: BaseException) -> bool:
    """Slack may have done the call: it failed on Slack's side (a 5xx, or internal_error or fatal_error in the
    body, whatever the status) or on the way (a timeout, the connection)."""
    if isinstance(exc, SlackApiError):
        return exc.response is not None and (exc.response.status_code >= 500 or slack_error(exc) in HALF_DONE)
    return True


# The waits between tries of a call whose outcome is unknown (a 5xx, a timeout, the connection), about two minutes
# in all: a short Slack incident must not cost a reply, and a post is tried again only once the thread was read.
OUTCOME_WAITS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0)


# Slack's own trouble, said in a body: the call may work the next time. (Not `request_timeout`: Slack's docs say it
# of a POST whose data was missing or truncated, a refusal of that request.)
PASSING_ERRORS = frozenset({"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable"})


def passing(exc: BaseException) -> bool:
    """A failure that says nothing about whether the call can work (Slack's trouble, a rate limit, the way
    there), as opposed to a refusal, which will be made again."""
    return outcome_unknown(exc) or (isinstance(exc, SlackApiError) and slack_error(exc) in PASSING_ERRORS)


# What Slack says to a cheap call now: it answers (a refusal of anything but the token is an answer too: the run
# made again says what it means), it is down, or it refuses the bridge's token (TOKEN_REFUSALS).
SlackAnswer = Literal["answers", "down", "refuses"]


async def answers(client: AsyncWebClient) -> SlackAnswer:
    """Whether Slack answers auth.test now: a turn whose posts Slack did not take while it was down runs again once
    it does, and ends failed if Slack refuses the token (waiting would not bring it back)."""
    try:
        await client.auth_test()
    except FAILURES as exc:
        if passing(exc):
            return "down"
        return "refuses" if slack_error(exc) in TOKEN_REFUSALS else "answers"
    return "answers"


def granted_scopes(response: Any) -> frozenset[str] | None:
    """The scopes a Web API answer says its token was granted (`x-oauth-scopes`); None when it does not say."""
    header = str(response.headers.get("x-oauth-scopes") or response.headers.get("X-OAuth-Scopes") or "")
    scopes = frozenset(s.strip() for s in header.split(",") if s.strip())
    return scopes or None


def slack_error(exc: BaseException) -> str:
    """Slack's error code for a refused call, else the failure's type (a timeout, a dropped connection)."""
    if isinstance(exc, SlackApiError) and exc.response is not None and isinstance(exc.response.data, dict):
        return str(exc.response.data.get("error", "unknown"))
    return "unknown" if isinstance(exc, SlackApiError) else type(exc).__name__


def refused_conversation(response: Any, channel_id: str) -> str | None:
    """What a conversations.info refused for want of a scope is: "im" or "mpim", else None. The manifest grants
    channels:read and groups:read but neither im:read nor mpim:read, so one refused to a token with the first two
    (`provided`) is a DM (a D… id) or a group DM; `needed` says which when it names one scope alone."""
    needed = str(response.get("needed") or "")
    provided = set(str(response.get("provided") or "").split(","))
    if needed == "im:read":
        return "im"
    if needed == "mpim:read" or ({"channels:read", "groups:read"} <= provided and not channel_id.startswith("D")):
        return "mpim"
    return None
