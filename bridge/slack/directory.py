"""Names for people and channels (users.info, conversations.info), cached, and a thread's earlier messages; a
lookup failure is never fatal."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.domain import SharedFile
from bridge.slack.decide import SPOKEN_SUBTYPES
from bridge.slack.failures import FAILURES, refused_conversation, slack_error
from bridge.slack.files import shared_files

log = logging.getLogger(__name__)


THREAD_CALLS = 10  # conversations.replies calls for one thread's context, at most
ROOTS_KEPT = 1000  # long threads whose first message is kept (read once a thread)
NAME_PAUSE_SECONDS = 30.0  # a rate-limited name lookup with no Retry-After: Slack's usual wait
CHANNEL_INFO = "conversations.info"
NAME_KEPT_SECONDS = 600.0  # a name is asked again this long after it was learned: channels get renamed
DM_WORDS = "a direct message"  # a DM where a channel's name would be said
GROUP_DM_WORDS = "a group direct message"  # a group DM: its Slack name (mpdm-a--b--c-1) is no name people see
ANSWERS_KEPT = ("missing_scope", "channel_not_found")  # conversations.info refusals kept as long as a name


@dataclass(frozen=True)
class Earlier:
    """A person's earlier message in a thread: who, their Slack text, the files they shared; another app's post
    (an alert the thread was started under); or one of the bot's own posts asked for (no user)."""

    user_id: str  # an app's post: its bot id
    name: str  # an app's post: the app's name, marked as an app's
    text: str
    files: tuple[SharedFile, ...] = ()
    ts: str = ""


class Directory:
    """Names are looked up once per NAME_KEPT_SECONDS (a channel renamed, a display name changed: the agents are
    told the new one within minutes), through the client that does not wait out rate limits: a turn never
    waits for a name. A burst of turns asking for one name makes one call, and a method Slack has rate-limited
    (users.info is Tier 4, conversations.info Tier 3, per workspace) is not asked again until its Retry-After has
    passed; meanwhile the id stands in for the name."""

    def __init__(
        self, client: AsyncWebClient, reads: AsyncWebClient | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._reads = reads or client  # name lookups and thread reads: a client that does not wait out rate limits
        self._clock = clock
        self._users: dict[str, tuple[str, float]] = {}  # id -> (name, when it was learned)
        self._channels: dict[str, tuple[str, float]] = {}
        self._ims: set[str] = set()  # conversations.info said is_im
        self._mpims: set[str] = set()  # conversations.info said is_mpim, or refused it for want of mpim:read
        self._looking: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._paused: dict[str, float] = {}  # method -> when Slack's Retry-After ends
        self._own_bot: str | None = None  # this app's bot id (auth.test), learnt when a thread has bots' posts
        self._roots: collections.OrderedDict[tuple[str, str], dict[str, Any] | None] = collections.OrderedDict()

    async def user_name(
        self, user_id: str, said: tuple[str, str] | None = None, profile: dict[str, Any] | None = None
    ) -> str:
        """The person's name. users.info refuses someone of another organisation in a Slack Connect channel
        (`user_not_found`), whose profile Slack embeds in their messages instead: `profile` is one at hand, `said`
        (channel, ts) a message of theirs to read it from."""

        async def embedded() -> str | None:
            found = profile if profile is not None or said is None else await self._profile_in(*said)
            return _profile_name(found or {}) or None

        return await self._name("users.info", user_id, self._users, embedded)

    async def channel_name(self, channel_id: str) -> str:
        return await self._name(CHANNEL_INFO, channel_id, self._channels)

    def is_dm(self, channel_id: str) -> bool:
        """A DM has no name (conversations.info: is_im, no `name`): its id is no channel to tell anyone of."""
        return channel_id.startswith("D") or channel_id in self._ims

    def conversation_words(self, channel_id: str) -> str | None:
        """How a DM or group DM is said where a channel's name would be (None for a channel): neither has a name
        a person sees, and a group DM's is known only once it was looked up."""
        if self.is_dm(channel_id):
            return DM_WORDS
        return GROUP_DM_WORDS if channel_id in self._mpims else None

    async def channel_shown(self, channel_id: str) -> str:
        """The channel as a thread's words name it: `#name`, "a direct message" (a D… id: nothing to ask Slack)
        or "a group direct message"."""
        name = "" if self.is_dm(channel_id) else await self.channel_name(channel_id)
        return self.conversation_words(channel_id) or f"#{name}"

    def channel_name_soon(self, channel_id: str) -> None:
        """Start looking the channel's name up, unless it is known or Slack is being asked nothing: a turn asks
        for it before it waits for its slot and place (TurnWorker.expect), so that the round trip overlaps the wait
        instead of lengthening its preparation."""
        known, now = self._channels.get(channel_id), self._clock()
        if self.is_dm(channel_id):
            return
        if (known is None or now - known[1] >= NAME_KEPT_SECONDS) and now >= self._paused.get(CHANNEL_INFO, 0.0):
            self._looking_up(CHANNEL_INFO, channel_id, self._channels, None)

    async def _name(
        self,
        method: str,
        key: str,
        cache: dict[str, tuple[str, float]],
        refused: Callable[[], Awaitable[str | None]] | None = None,
    ) -> str:
        known, now = cache.get(key), self._clock()
        if known is not None and now - known[1] < NAME_KEPT_SECONDS:
            return known[0]
        if now < self._paused.get(method, 0.0):
            return known[0] if known else key  # the name last known, or the id, while Slack is asked nothing
        looking = self._looking_up(method, key, cache, refused)
        return await asyncio.shield(looking)  # one caller cancelled leaves the lookup to the others

    def _looking_up(
        self,
        method: str,
        key: str,
        cache: dict[str, tuple[str, float]],
        refused: Callable[[], Awaitable[str | None]] | None,
    ) -> asyncio.Future[str]:
        """The lookup of `key` under way, started if none is; its failure is retrieved here (a lookup started
        ahead may have nobody waiting for it) and raised to those who do wait."""
        looking = self._looking.get((method, key))
        if looking is None:

            def finished(done: asyncio.Future[str]) -> None:
                self._looking.pop((method, key), None)
                if not done.cancelled():
                    done.exception()  # retrieved; still raised to whoever awaits it

            looking = asyncio.ensure_future(self._look_up(method, key, cache, refused))
            self._looking[(method, key)] = looking
            looking.add_done_callback(finished)
        return looking

    async def _look_up(
        self,
        method: str,
        key: str,
        cache: dict[str, tuple[str, float]],
        refused: Callable[[], Awaitable[str | None]] | None,
    ) -> str:
        try:
            if method == "users.info":
                user = (await self._reads.users_info(user=key)).get("user") or {}
                name = _profile_name(user.get("profile") or {}) or user.get("name") or key
            else:
                channel = (await self._reads.conversations_info(channel=key)).get("channel") or {}
                name = channel.get("name") or key
                # Set both ways: members may convert a group DM to a private channel, which is asked again.
                (self._ims.add if channel.get("is_im") else self._ims.discard)(key)
                (self._mpims.add if channel.get("is_mpim") else self._mpims.discard)(key)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            if method == CHANNEL_INFO and error in ANSWERS_KEPT:  # Slack would answer the same: asked no more
                self._refused_kind(key, exc.response)
                cache[key] = (cache[key][0] if key in cache else key, self._clock())
            limited = exc.response is not None and (exc.response.status_code == 429 or error == "ratelimited")
            if limited and exc.response is not None:
                wait = _retry_after(exc.response.headers)
                self._paused[method] = self._clock() + (NAME_PAUSE_SECONDS if wait is None else wait)
            log.info("slack %s failed id=%s error=%s", method, key, error)
            elsewhere = await refused() if refused is not None and not limited else None
            if elsewhere is None:
                return cache[key][0] if key in cache else key  # a name asked again: the last one known stands
            name = elsewhere
        cache[key] = (name, self._clock())
        return name

    def _refused_kind(self, key: str, response: Any) -> None:
        """A conversation conversations.info refused for want of a scope: a DM or group DM, where the refusal says
        so (`refused_conversation`)."""
        kind = refused_conversation(response, key)
        if kind == "im":
            self._ims.add(key)
        elif kind == "mpim":
            self._mpims.add(key)

    async def _profile_in(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        """The sender's profile Slack embeds in one message (a person of another organisation's), if any. Two
        messages are asked for: conversations.replies answers a thread's parent first (the capture), so that a
        reply's window of one held the parent alone."""
        try:
            response = await self._reads.conversations_replies(
                channel=channel_id, ts=ts, oldest=ts, latest=ts, inclusive=True, limit=2
            )
        except FAILURES as exc:
            log.info("slack conversations.replies failed channel=%s error=%s", channel_id, slack_error(exc))
            return None
        for message in response.get("messages") or []:
            if isinstance(message, dict) and message.get("ts") == ts and isinstance(message.get("user_profile"), dict):
                return dict(message["user_profile"])
        return None

    async def thread_before(
        self, channel_id: str, thread_ts: str, before_ts: str, limit: int = 50, ours: Collection[str] = ()
    ) -> list[Earlier]:
        """The last `limit` people's messages in a thread before `before_ts` (and the bot's posts whose ts is in
        `ours`), oldest first; only their speakers are looked up.

        conversations.replies reads a thread oldest first, so the newest part is found by time: a window
        reaching back from `before_ts` (an hour at first), narrowed while it holds more than one page, widened
        while it holds fewer than `limit` messages, at most THREAD_CALLS calls. Rate-limited (429 or
        `ratelimited`, as apps outside the Marketplace are after one call a minute), it goes on with what it
        has. Bots (this bridge's agents included) are left out, but for `ours`: Letta agents remember what they said,
        except in a conversation made after they said it.
        """
        best: list[dict[str, Any]] = []  # the messages of the last complete window, else of a partial one
        complete = read = False
        first: dict[str, Any] | None = None  # the thread's first message, once a page has held it
        root, before = _ts_key(thread_ts), _ts_key(before_ts)
        span, known_small, known_big = 3600.0, 0.0, 0.0
        for _ in range(THREAD_CALLS):
            oldest = max(root, _minus(before, span))
            page = await self._replies(channel_id, thread_ts, oldest, before_ts)
            if page is None:
                break
            messages, more = page
            read = True
            first = first or next((m for m in messages if m.get("ts") == thread_ts), None)
            own = await self._own_bot_id() if any(_bot_post(m) and m.get("ts") not in ours for m in messages) else None
            messages = [
                m for m in messages
                if (_spoken(m) or _app_post(m, own) or m.get("ts") in ours) and _ts_key(str(m.get("ts", ""))) < before
            ]
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
        if read and root < before and all(m.get("ts") != thread_ts for m in best):
            first = first or await self._root(channel_id, thread_ts)
            if first is not None and (_spoken(first) or first.get("ts") in ours or (
                _bot_post(first) and _app_post(first, await self._own_bot_id())
            )):
                best.append(first)
        best.sort(key=lambda m: _ts_key(str(m.get("ts", ""))))
        if len(best) > limit and best[0].get("ts") == thread_ts:  # what the thread is about stays
            best = [best[0], *best[1 - limit:]] if limit > 1 else best[:1]
        found: list[Earlier] = []
        for message in best[-limit:]:
            ts, text = str(message.get("ts", "")), str(message.get("text", ""))
            if ts in ours:
                found.append(Earlier("", "", text, ts=ts))
                continue
            if not _spoken(message):  # another app's post
                found.append(Earlier(str(message["bot_id"]), _app_name(message), _app_text(message), ts=ts))
                continue
            user = str(message["user"])
            named = await self.user_name(user, profile=message.get("user_profile"))
            found.append(Earlier(user, named, text, shared_files(message), ts))
        return found

    async def _root(self, channel_id: str, thread_ts: str) -> dict[str, Any] | None:
        """A long thread's first message (its alert, its question), which the window reaching back from the
        mention did not reach: the first message of the thread's first page, one call a thread (kept)."""
        key = (channel_id, thread_ts)
        if key in self._roots:
            self._roots.move_to_end(key)
            return self._roots[key]
        try:
            response = await self._reads.conversations_replies(channel=channel_id, ts=thread_ts, limit=1)
        except FAILURES as exc:
            log.info("slack conversations.replies failed channel=%s error=%s", channel_id, slack_error(exc))
            return None
        messages = [m for m in response.get("messages") or [] if isinstance(m, dict)]
        first = messages[0] if messages and messages[0].get("ts") == thread_ts else None
        self._roots[key] = first
        if len(self._roots) > ROOTS_KEPT:
            self._roots.popitem(last=False)
        return first

    async def _own_bot_id(self) -> str | None:
        """This app's bot id, asked once; None while Slack does not say (every bot's post is then left out)."""
        if self._own_bot is None:
            try:
                self._own_bot = str((await self._reads.auth_test()).get("bot_id") or "") or None
            except FAILURES as exc:
                log.info("slack auth.test failed error=%s", slack_error(exc))
        return self._own_bot

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


def _profile_name(profile: dict[str, Any]) -> str:
    """A profile's name as people see it: its display name, else its real name (empty when it has neither)."""
    return str(profile.get("display_name") or profile.get("real_name") or "")


def _spoken(message: dict[str, Any]) -> bool:
    """A person's own message (no bot, no edit, join or other event)."""
    subtype = message.get("subtype")
    return not message.get("bot_id") and subtype in (None, *SPOKEN_SUBTYPES) and isinstance(message.get("user"), str)


def _bot_post(message: dict[str, Any]) -> bool:
    bot, subtype = message.get("bot_id"), message.get("subtype")
    return bool(isinstance(bot, str) and bot and subtype in (None, "bot_message", *SPOKEN_SUBTYPES)
                and _app_text(message).strip())


def _app_post(message: dict[str, Any], own_bot: str | None) -> bool:
    """Another app's post (an alert, a CI result): a bot's, not this app's (whose replies come from the store,
    `ours`, and whose notices the agents need not read); with this app's bot id unknown, none is."""
    return own_bot is not None and _bot_post(message) and message.get("bot_id") != own_bot


def _app_name(message: dict[str, Any]) -> str:
    profile = message.get("bot_profile") if isinstance(message.get("bot_profile"), dict) else {}
    name = str(message.get("username") or (profile or {}).get("name") or "an app")
    return f"{name} (app)"


def _app_text(message: dict[str, Any]) -> str:
    """An app's words: its text, else its attachments' fallbacks (what Slack shows where it cannot draw them)."""
    text = str(message.get("text") or "")
    if text.strip():
        return text
    attachments = message.get("attachments") if isinstance(message.get("attachments"), list) else []
    return "\n".join(str(a.get("fallback") or a.get("text") or "") for a in attachments or [] if isinstance(a, dict))


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


def _retry_after(headers: Mapping[str, object] | None) -> float | None:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(str(value)))
            except ValueError:
                return None
    return None
