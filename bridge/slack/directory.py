"""Names for people and channels (users.info, conversations.info), cached, and the facts that decide who may
configure the bridge (uncached); a lookup failure is never fatal."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import SharedFile
from bridge.slack.decide import SPOKEN_SUBTYPES
from bridge.slack.files import shared_files
from bridge.slack.permissions import Member
from bridge.slack.post import FAILURES

log = logging.getLogger(__name__)


THREAD_CALLS = 10  # conversations.replies calls for one thread's context, at most


@dataclass(frozen=True)
class Earlier:
    """A person's earlier message in a thread: who, their Slack text, the files they shared."""

    user_id: str
    name: str
    text: str
    files: tuple[SharedFile, ...] = ()


class Directory:
    def __init__(self, client: AsyncWebClient, reads: AsyncWebClient | None = None) -> None:
        self._client = client
        self._reads = reads or client  # thread reads: a client that does not wait out rate limits
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
    ) -> list[Earlier]:
        """The last `limit` people's messages in a thread before `before_ts`,
        oldest first; only their speakers are looked up.

        conversations.replies reads a thread oldest first, so the newest part is found by time: a window
        reaching back from `before_ts` (an hour at first), narrowed while it holds more than one page, widened
        while it holds fewer than `limit` messages, at most THREAD_CALLS calls. Rate-limited (429 or
        `ratelimited`, as apps outside the Marketplace are after one call a minute), it goes on with what it
        has. Bots (this bridge's agents included) are left out: Letta agents remember what they said.
        """
        best: list[dict[str, Any]] = []  # the messages of the last complete window, else of a partial one
        complete = False
        root, before = _ts_key(thread_ts), _ts_key(before_ts)
        span, known_small, known_big = 3600.0, 0.0, 0.0
        for _ in range(THREAD_CALLS):
            oldest = max(root, _minus(before, span))
            page = await self._replies(channel_id, thread_ts, oldest, before_ts)
            if page is None:
                break
            messages, more = page
            messages = [m for m in messages if _spoken(m) and _ts_key(str(m.get("ts", ""))) < before]
            if more:
                known_big = span
                if not complete:
                    best = messages  # the oldest page of a too-wide window: better than nothing
                span = (known_small + span) / 2 if known_small else span / 8
                continue
            best, complete = messages, True
            if len(messages) >= limit or oldest == root:
                break
            known_small = span
            span = (span + known_big) / 2 if known_big else span * 8
        best.sort(key=lambda m: _ts_key(str(m.get("ts", ""))))
        found: list[Earlier] = []
        for message in best[-limit:]:
            user = str(message["user"])
            text = str(message.get("text", ""))
            found.append(Earlier(user, await self.user_name(user), text, shared_files(message)))
        return found

    async def _replies(
        self, channel_id: str, thread_ts: str, oldest: tuple[int, int], latest: str
    ) -> tuple[list[dict[str, Any]], bool] | None:
        """One page of the thread between `oldest` and `latest`, and whether more remain; None when Slack
        refused (rate-limited or otherwise)."""
        try:
            response = await self._reads.conversations_replies(
                channel=channel_id, ts=thread_ts, oldest=_ts(oldest), latest=latest, inclusive=True, limit=200
            )
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            log.info("slack conversations.replies failed channel=%s error=%s", channel_id, error)
            return None
        except FAILURES as exc:
            log.info("slack conversations.replies failed channel=%s error=%s", channel_id, type(exc).__name__)
            return None
        messages = [m for m in response.get("messages") or [] if isinstance(m, dict)]
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        return messages, bool(response.get("has_more") or cursor)


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


def _spoken(message: dict[str, Any]) -> bool:
    """A person's own message (no bot, no edit, join or other event)."""
    subtype = message.get("subtype")
    return not message.get("bot_id") and subtype in (None, *SPOKEN_SUBTYPES) and isinstance(message.get("user"), str)


def _minus(ts: tuple[int, int], seconds: float) -> tuple[int, int]:
    micros = ts[0] * 1_000_000 + ts[1] - int(seconds * 1_000_000)
    return max(0, micros) // 1_000_000, max(0, micros) % 1_000_000


def _ts(key: tuple[int, int]) -> str:
    return f"{key[0]}.{key[1]:06d}"


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros or 0)
    except ValueError:
        return 0, 0
