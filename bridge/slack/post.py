"""Everything the bridge posts to Slack (what each Slack failure means: `failures.py`).

Rate limits (429) are retried by slack_sdk's handler on the client, then here (as is `rate_limited`), each after
the wait Slack asks for: Slack did not process the call. A 5xx or a dropped connection may have posted, so before
posting again the thread is read back to check, for about two minutes (`OUTCOME_WAITS`), and a thread that cannot
be read is read again rather than posted in blind. A message whose blocks Slack refuses is posted as its text
alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bridge.slack.agent_names import ShownNames
from bridge.slack.failures import (
    BLOCKS_REFUSED,
    CHANNEL_REFUSALS,
    FAILURES,
    OUTCOME_WAITS,
    TOKEN_REFUSALS,
    SlackPostError,
    granted_scopes,
    outcome_unknown,
    passing,
    slack_error,
)

# What a post is made of lives in parts.py; its names are still taken from here.
from bridge.slack.parts import Author as Author
from bridge.slack.parts import Look as Look
from bridge.slack.parts import Part as Part
from bridge.slack.parts import dispensable, plain
from bridge.slack.ratelimits import RATE_LIMIT_WAITS, not_counted, rate_limited, retry_after
from bridge.slack.render import escape, named, notes_blocks, reply_texts, split
from bridge.store.leases import check_lease

log = logging.getLogger(__name__)

LOOKUP_PAGES = 20  # conversations.replies pages read when checking whether a post landed (200 messages each)
REACTION_WAITS = (1.0, 3.0)  # seconds before a reaction Slack had trouble with is made again
Taken = Callable[[], Awaitable[Collection[str]]]  # the ts of a thread's posts recorded already


class _CannotTell(Exception):
    """Whether a post landed cannot be told now: the thread could not be read, or who the bot is is not known."""

    def __init__(self, refusal: str = "") -> None:
        super().__init__(refusal)
        self.refusal = refusal  # Slack refused the token as the bot was asked about: no wait will tell more


class SlackPoster:
    def __init__(
        self, client: AsyncWebClient, named_by_username: bool = True, looks: dict[str, Look] | None = None
    ) -> None:
        self._client = client
        self._usernames_wanted = named_by_username
        self._named_by_username = named_by_username
        self._looks = looks or {}
        self._shown = ShownNames({name: look.display_name for name, look in self._looks.items()})
        self._bot_id: str | None = None
        self._learning: asyncio.Future[None] | None = None
        self._token_seen = 0  # counts installs: an auth.test of an earlier token is not learnt from
        self._token_refused = ""  # Slack's refusal of the token at the last auth.test (TOKEN_REFUSALS), if any
        self._status_works = True
        self._postable: set[str] = set()  # channels a post landed in, until one is refused for good
        self._refused: dict[str, str] = {}  # channel -> Slack's refusal of it (CHANNEL_REFUSALS), until a post lands

    async def learn(self) -> None:
        """Ask Slack once who the bot is and what its token was granted, before the first turn builds a message.

        Slack ignores `username` and the icons without chat:write.customize (chat.postMessage's notes in
        reference/slack), so a reply would carry no agent's name at all: without the scope, the name leads the
        text from the first message on. Concurrent turns share the one auth.test; a failed one is asked again by
        the next turn, and until then the names stay custom usernames."""
        if self._bot_id is not None:
            return
        if self._learning is None:
            self._learning = asyncio.ensure_future(self._ask_who())
        learning = self._learning
        try:
            await asyncio.shield(learning)
        except FAILURES as exc:
            error = slack_error(exc)
            log.warning("slack auth.test failed error=%s", error)
            self._token_refused = error if error in TOKEN_REFUSALS else ""
            if self._learning is learning:
                self._learning = None

    def relearn(self) -> None:
        """The app was installed again (its scopes may have changed): the next turn asks Slack once more, and
        the agents' names go back to custom usernames if the new token has chat:write.customize."""
        self._bot_id = None
        self._learning = None
        self._named_by_username = self._usernames_wanted
        self._token_seen += 1
        self._token_refused = ""

    async def _ask_who(self) -> None:
        asked = self._token_seen
        response = await self._client.auth_test()
        if asked != self._token_seen:
            return  # it spoke of the token before a new install: the next turn asks again
        self._token_refused = ""
        granted = granted_scopes(response)
        if self._named_by_username and granted is not None and "chat:write.customize" not in granted:
            self._named_by_username = False
            log.warning(
                "the bot token lacks chat:write.customize, with which Slack shows agents' names; "
                "replies start with the agent's name in bold"
            )
        self._bot_id = str(response.get("bot_id") or "")

    def known_postable(self, channel: str) -> bool:
        """Whether a post in this channel landed, and none has been refused for good since."""
        return channel in self._postable

    def landed(self, channel: str) -> None:
        """A message of the bot's was just posted in this channel (a reply here, or a draft elsewhere)."""
        self._postable.add(channel)
        self._refused.pop(channel, None)

    async def still_refused(self, channel: str) -> str | None:
        """Slack's refusal of the channel (`is_archived`, `not_in_channel`, `channel_not_found`) when a post there
        was refused so and conversations.info says the channel is still that way; None when no post was refused,
        or the channel takes posts again (unarchived, the bot invited back), or Slack cannot tell now. One read,
        only for a channel already refused: a turn waiting there is not sent to agents nobody could hear."""
        refusal = self._refused.get(channel)
        if refusal is None:
            return None
        try:
            info = (await self._client.conversations_info(channel=channel)).get("channel") or {}
        except FAILURES as exc:
            if isinstance(exc, SlackApiError) and slack_error(exc) == "channel_not_found":
                return "channel_not_found"
            return None  # Slack's trouble, or a scope the app lacks: the turn runs, and its post says
        if info.get("is_archived"):
            return "is_archived"
        if info.get("is_member") is False:
            return "not_in_channel"
        self._refused.pop(channel, None)
        return None

    @property
    def client(self) -> AsyncWebClient:
        return self._client

    def note_parts(self, agent_name: str, notes: list[list[str]]) -> list[Part]:
        """An agent's reasoning and tool calls: one message of context blocks under its reply."""
        author = self.author(agent_name)
        fallback = f"{escape(self.shown_name(agent_name))}: reasoning and tool calls"
        blocks = tuple(notes_blocks([(kind, text) for kind, text in notes]))
        return [Part(fallback, author.username, author.icon_emoji, author.icon_url, blocks)]

    def author(self, agent_name: str) -> Author:
        """Who an agent's messages are posted as; the app itself once Slack refused custom usernames."""
        if not self._named_by_username:
            return Author()
        look = self._looks.get(agent_name, Look())
        return Author(look.display_name or agent_name, look.icon_emoji, look.icon_url)

    def shown_name(self, agent_name: str) -> str:
        """The agent's name as its replies show it (SLACK_AGENTS' display_name, else its Letta name)."""
        return self._shown.name(agent_name)

    def shown_words(self, text: str) -> str:
        """A failure the Letta side worded, its agents named as their replies show them (agent_names.py)."""
        return self._shown.words(text)

    def parts(self, agent_name: str | None, text: str) -> list[Part]:
        """The Slack messages for one agent's reply (under its name) or one bridge notice (agent_name None)."""
        if agent_name is None:
            return [Part(p, None) for p in split(escape(text))]
        look = self._looks.get(agent_name, Look())
        shown = self.shown_name(agent_name)
        if not self._named_by_username:
            return [Part(p, None) for p in reply_texts(shown, text, False)]
        return [Part(p, shown, look.icon_emoji, look.icon_url) for p in reply_texts(shown, text, True)]

    async def post(
        self,
        channel: str,
        thread_ts: str,
        part: Part,
        check_first: bool = False,
        after: str | None = None,
        taken: Taken | None = None,
    ) -> str:
        """Post one part into the thread; returns its ts. Raises SlackPostError.

        `check_first` reads the thread before posting: after a crash, a part may have reached Slack
        without the bridge having recorded it. `after` is the ts of the turn's message: a post of the turn
        can only be later, so only that part of the thread is read. `taken` gives the ts of the thread's posts
        recorded already, asked only when the thread is read: none of them is this part's.
        """
        unknown = waits = 0
        while check_first:
            try:
                found = await self._find(channel, thread_ts, part, after, await taken() if taken else ())
            except _CannotTell as cannot:
                unknown = await self._wait_out(unknown, "thread_unreadable", cannot)
                continue
            if found:
                return found
            break
        while True:
            check_lease()  # a turn's worker that stalled past its binding's lease posts nothing more
            try:
                response = await self._client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts,
                    text=part.text,
                    username=part.username,
                    icon_emoji=part.icon_emoji,
                    icon_url=part.icon_url,
                    blocks=part.all_blocks(),
                    unfurl_links=False,
                    unfurl_media=False,
                )
                self.landed(channel)
                return str(response.get("ts", ""))
            except SlackApiError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                error = slack_error(exc)
                if error == "missing_scope" and part.username:
                    # No chat:write.customize: from now on the name leads the text, in bold.
                    if self._named_by_username:
                        self._named_by_username = False
                        log.warning(
                            "slack refused custom usernames (missing chat:write.customize); "
                            "replies now start with the agent's name in bold"
                        )
                    part = Part(named(part.username, part.text), None, blocks=part.blocks, actions=part.actions)
                    continue
                if error in BLOCKS_REFUSED and dispensable(part):
                    log.warning("slack refused a message's blocks channel=%s error=%s; its text alone", channel, error)
                    part = plain(part)
                    continue
                if rate_limited(exc) and waits < RATE_LIMIT_WAITS:
                    # Slack did not process the post: it is made again once the wait Slack asks for is over.
                    waits += 1
                    wait = retry_after(exc, waits)
                    log.warning("slack rate-limited a post channel=%s error=%s wait=%.0fs", channel, error, wait)
                    not_counted(wait)
                    await asyncio.sleep(wait)
                    continue
                if not outcome_unknown(exc):
                    log.warning("slack chat.postMessage failed channel=%s error=%s", channel, error)
                    failure = SlackPostError("chat.postMessage", error)
                    if failure.permanent:
                        self._postable.discard(channel)
                    if error in CHANNEL_REFUSALS:
                        self._refused[channel] = error
                    raise failure from None
                reason = f"http_{status}"
            except FAILURES as exc:
                reason = type(exc).__name__
            log.warning("slack post outcome unknown channel=%s reason=%s attempt=%d", channel, reason, unknown)
            while True:
                try:
                    found = await self._find(channel, thread_ts, part, after, await taken() if taken else ())
                    break
                except _CannotTell as cannot:
                    unknown = await self._wait_out(unknown, reason, cannot)
            if found:
                return found
            unknown = await self._wait_out(unknown, reason)

    async def _wait_out(self, waited: int, reason: str, cannot: _CannotTell | None = None) -> int:
        """The next wait of `OUTCOME_WAITS` after `waited` of them; SlackPostError once all were waited, or at once
        when Slack refused the token (not Slack down: the turn ends failed rather than waiting for Slack)."""
        if cannot is not None and cannot.refusal:
            raise SlackPostError("auth.test", cannot.refusal) from None
        if waited >= len(OUTCOME_WAITS):
            raise SlackPostError("chat.postMessage", reason, unknown=True)
        await asyncio.sleep(OUTCOME_WAITS[waited])
        return waited + 1

    async def find_posted(
        self, channel: str, thread_ts: str, part: Part, after: str | None = None, taken: Collection[str] = ()
    ) -> str | None:
        """The ts of our own message with this text, under this name, in the thread, if the failed post did land:
        the thread from `after` on (the turn's own message), page by page, however long the thread. The name
        counts: two agents may say the same words, and mistaking one's post for the other's would lose it; so do
        the posts recorded already (`taken`): an agent may say the same words twice in a thread. A part Slack
        refused the blocks of was posted as its plain text: that counts too. None too when the thread cannot be
        read now."""
        try:
            return await self._find(channel, thread_ts, part, after, taken)
        except _CannotTell:
            return None

    async def _find(
        self, channel: str, thread_ts: str, part: Part, after: str | None, taken: Collection[str]
    ) -> str | None:
        """`find_posted`, raising _CannotTell when Slack cannot be asked or does not say who the bot is."""
        cursor: str | None = None
        texts = {part.text, plain(part).text}
        await self.learn()
        if self._bot_id is None:  # Slack did not say who the bot is: nothing can be told apart as ours
            raise _CannotTell(self._token_refused)
        for _ in range(LOOKUP_PAGES):
            try:
                response = await self._client.conversations_replies(
                    channel=channel, ts=thread_ts, limit=200, cursor=cursor, oldest=after, inclusive=bool(after)
                )
            except FAILURES as exc:
                if passing(exc):
                    raise _CannotTell from exc
                error = slack_error(exc)
                log.warning("slack thread not readable to check for a post channel=%s error=%s", channel, error)
                return None  # refused (a scope, the thread gone): reading again would tell no more
            for message in response.get("messages") or []:
                if (
                    message.get("bot_id") == self._bot_id
                    and message.get("ts") not in taken
                    and message.get("text") in texts
                    and (part.username is None or message.get("username") == part.username)
                ):
                    return str(message.get("ts"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        log.warning("slack thread too long to check for a post channel=%s thread=%s", channel, thread_ts)
        return None

    async def status(self, channel: str, thread_ts: str, text: str) -> None:
        """The thread's status line ("bob is thinking..."); skipped for good once Slack refuses it. A failure that
        may pass (a rate limit, a 5xx, a timeout) turns it off for nobody: the lines other turns show must still be
        taken back, and the next turn shows its own."""
        if not self._status_works:
            return
        try:
            await self._client.assistant_threads_setStatus(channel_id=channel, thread_ts=thread_ts, status=text)
        except FAILURES as exc:
            error = slack_error(exc)
            if passing(exc):
                log.info("slack assistant.threads.setStatus failed error=%s", error)
                return
            self._status_works = False
            log.info("slack thread status unavailable, not trying again error=%s", error)

    async def react(self, channel: str, ts: str, name: str) -> None:
        await self._reaction("reactions.add", channel, ts, name, "already_reacted")

    async def unreact(self, channel: str, ts: str, name: str) -> None:
        await self._reaction("reactions.remove", channel, ts, name, "no_reaction")

    async def _reaction(self, method: str, channel: str, ts: str, name: str, done: str) -> None:
        """A reaction added or taken back, made again after Slack's trouble (a 5xx, internal_error, the
        connection): the same call twice is harmless (`done` says it was made), and a mention left with no sign
        at all (👀 taken back, ✅ lost) would say nothing of how its turn ended. An empty name is that reaction
        turned off (SLACK_*_REACTION set empty): no call at all."""
        if not name:
            return
        call = self._client.reactions_add if method == "reactions.add" else self._client.reactions_remove
        for wait in (*REACTION_WAITS, None):
            try:
                await call(channel=channel, timestamp=ts, name=name)
                return
            except FAILURES as exc:
                error = slack_error(exc)
                if error == done:
                    return
                if wait is None or not outcome_unknown(exc):
                    log.warning("slack %s failed channel=%s error=%s", method, channel, error)
                    return
                await asyncio.sleep(wait)
