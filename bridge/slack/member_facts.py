"""The facts that decide who may configure the bridge (users.info, conversations.info), never cached since rights
change; a failed lookup grants nothing."""

from __future__ import annotations

import asyncio
import copy
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.failures import FAILURES, refused_conversation, slack_error
from bridge.slack.permissions import GROUP_DM_CREATOR, Member

log = logging.getLogger(__name__)

MEMBER_LOOKUP_SECONDS = 5  # each request of member_facts: past it, the rights are unknown (not a Letta wait)
MEMBER_LOOKUP_WAIT = 35.0  # the lookups with their rate-limit waits (Slack's usual Retry-After: 30 s), in /letta's 60


async def member_facts(client: AsyncWebClient, user_id: str, channel_id: str, with_creator: bool) -> Member:
    """What decides whether someone may configure: users.info (admin, owner, guest) and, in `creator` mode,
    conversations.info. Never cached, since rights change; a failed lookup grants nothing."""
    is_admin = is_owner = created = guest = False
    admin_unknown = creator_unknown = None
    client = bounded(client, MEMBER_LOOKUP_SECONDS)
    deadline = asyncio.get_running_loop().time() + MEMBER_LOOKUP_WAIT  # both lookups, within /letta's deadline
    try:
        async with asyncio.timeout_at(deadline):
            user = (await client.users_info(user=user_id)).get("user") or {}
        is_admin = bool(user.get("is_admin"))
        is_owner = bool(user.get("is_owner") or user.get("is_primary_owner"))
        guest = bool(user.get("is_restricted") or user.get("is_ultra_restricted"))
    except FAILURES as exc:
        admin_unknown = _unknown(exc)
        log.warning("slack users.info failed user=%s error=%s", user_id, admin_unknown)
    if with_creator:
        try:
            async with asyncio.timeout_at(deadline):
                channel = (await client.conversations_info(channel=channel_id)).get("channel") or {}
            created = bool(channel.get("creator")) and channel.get("creator") == user_id
        except FAILURES as exc:
            creator_unknown = GROUP_DM_CREATOR if _group_dm(exc, channel_id) else _unknown(exc)
            log.warning("slack conversations.info failed channel=%s error=%s", channel_id, _unknown(exc))
    return Member(user_id, is_admin, is_owner, created, guest, admin_unknown, creator_unknown)


def bounded(client: AsyncWebClient, seconds: int) -> AsyncWebClient:
    """The client with each request answered within `seconds` or failed (TimeoutError), a rate limit's wait
    (Retry-After, which the client waits out) not cut short. slack_sdk applies its timeout only to a session of its
    own: the copy makes one per call (a connection more, for the rare calls that need a bound of their own)."""
    quick = copy.copy(client)
    quick.session = None
    quick.timeout = seconds
    return quick


def _unknown(exc: BaseException) -> str:
    """Why Slack did not say: its error code, or in words when it did not answer at all."""
    if isinstance(exc, SlackApiError):
        return slack_error(exc)
    return "no answer in time" if isinstance(exc, TimeoutError) else "no connection to Slack"


def _group_dm(exc: BaseException, channel_id: str) -> bool:
    """A refusal that says the conversation is a group DM, read as Directory reads it (`refused_conversation`)."""
    if not isinstance(exc, SlackApiError) or exc.response is None or not isinstance(exc.response.data, dict):
        return False
    return refused_conversation(exc.response.data, channel_id) == "mpim"
