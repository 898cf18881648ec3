"""Names for people and channels (users.info, conversations.info), cached, and the facts that decide who may
configure the bridge (uncached); a lookup failure is never fatal."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.permissions import Member

log = logging.getLogger(__name__)


class Directory:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._users: dict[str, str] = {}
        self._channels: dict[str, str] = {}

    async def user_name(self, user_id: str) -> str:
        if user_id not in self._users:
            name = user_id
            try:
                response = await self._client.users_info(user=user_id)
                user = response.get("user") or {}
                profile = user.get("profile") or {}
                name = profile.get("display_name") or profile.get("real_name") or user.get("name") or user_id
            except SlackApiError as exc:
                log.info("slack users.info failed user=%s error=%s", user_id, exc.response.get("error"))
                return user_id
            self._users[user_id] = name
        return self._users[user_id]

    async def channel_name(self, channel_id: str) -> str:
        if channel_id not in self._channels:
            name = channel_id
            try:
                response = await self._client.conversations_info(channel=channel_id)
                name = (response.get("channel") or {}).get("name") or channel_id
            except SlackApiError as exc:
                log.info("slack conversations.info failed channel=%s error=%s", channel_id, exc.response.get("error"))
                return channel_id
            self._channels[channel_id] = name
        return self._channels[channel_id]

    async def thread_before(
        self, channel_id: str, thread_ts: str, before_ts: str, limit: int = 50
    ) -> list[tuple[str, str, str]]:
        """(user id, speaker, text) of the people's messages in a thread before `before_ts`, oldest first, paginated.

        Bots (this bridge's agents included) are left out: Letta agents remember what they said.
        """
        found: list[tuple[str, str, str]] = []
        cursor: str | None = None
        try:
            for _ in range(10):
                response = await self._client.conversations_replies(
                    channel=channel_id, ts=thread_ts, limit=200, cursor=cursor
                )
                for message in response.get("messages") or []:
                    ts = str(message.get("ts", ""))
                    if message.get("bot_id") or message.get("subtype") or not message.get("user"):
                        continue
                    if _ts_key(ts) >= _ts_key(before_ts):
                        continue
                    user = str(message["user"])
                    found.append((user, await self.user_name(user), str(message.get("text", ""))))
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
        except SlackApiError as exc:
            log.info("slack conversations.replies failed channel=%s error=%s", channel_id, exc.response.get("error"))
        return found[-limit:]


async def member_facts(client: AsyncWebClient, user_id: str, channel_id: str, with_creator: bool) -> Member:
    """What decides whether someone may configure: users.info (admin, owner) and, in `creator` mode,
    conversations.info. Never cached, since rights change; a failed lookup grants nothing."""
    is_admin = is_owner = created = False
    try:
        user = (await client.users_info(user=user_id)).get("user") or {}
        is_admin = bool(user.get("is_admin"))
        is_owner = bool(user.get("is_owner") or user.get("is_primary_owner"))
    except SlackApiError as exc:
        log.warning("slack users.info failed user=%s error=%s", user_id, exc.response.get("error"))
    if with_creator:
        try:
            channel = (await client.conversations_info(channel=channel_id)).get("channel") or {}
            created = bool(channel.get("creator")) and channel.get("creator") == user_id
        except SlackApiError as exc:
            log.warning("slack conversations.info failed channel=%s error=%s", channel_id, exc.response.get("error"))
    return Member(user_id, is_admin=is_admin, is_owner=is_owner, created_channel=created)


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros or 0)
    except ValueError:
        return 0, 0
