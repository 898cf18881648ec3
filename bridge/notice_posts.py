"""The queue notice's message in Slack (notices.py): what one shows, and the calls that post and edit it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge.notice_words import Pending
from bridge.slack.failures import FAILURES, slack_error
from bridge.slack.post import SlackPoster
from bridge.store.base import ThreadKey

log = logging.getLogger(__name__)


@dataclass
class Notice:
    thread: ThreadKey
    ts: str
    where: str
    shown: int
    edited_at: float
    checked_at: float = field(default=0.0)
    approval: Pending | None = None
    ended: str | None = None  # its words once a waiting mention was deleted or stopped: said when none waits now
    # A turn of the thread started here since its newest mention came or another was taken back: what the notice
    # promised is being kept, so it is left as it is.
    answered: bool = False


@dataclass(frozen=True)
class Ending:
    """How a waiting mention of a thread whose notice is due or being posted ended unrun: the words the notice takes
    once posted, and whether, with no notice posted, they are said in the thread instead (a stop nothing else says:
    no running turn of the thread was stopped with it, which says "Stopped by …")."""

    words: str
    say: bool = False


class NoticeSlack:
    def __init__(self, poster_of: Callable[[str], Awaitable[SlackPoster]]) -> None:
        self._poster_of = poster_of  # the workspace's poster (one in single-workspace mode)

    async def post(self, thread: ThreadKey, words: str, since: str) -> str:
        """Post `words` in the thread after the mention `since` (a post whose outcome is unknown is looked for from
        there on); its ts. Raises when it was not posted."""
        poster = await self._poster_of(thread[0])
        return await poster.post(thread[1], thread[2], poster.parts(None, words)[0], after=since)

    async def say(self, thread: ThreadKey, words: str, since: str) -> None:
        """Words in the thread (its stop, when no notice was posted to say it): best effort."""
        try:
            await self.post(thread, words, since)
        except Exception as exc:
            log.info("could not say the turn is stopped channel=%s error=%s", thread[1], type(exc).__name__)

    async def edit(self, thread: ThreadKey, ts: str, words: str) -> bool:
        """Edit the thread's notice `ts` to say `words`; False when Slack refused."""
        try:
            poster = await self._poster_of(thread[0])
            text = poster.parts(None, words)[0].text
            await poster.client.chat_update(channel=thread[1], ts=ts, text=text)
        except FAILURES as exc:
            log.info("could not update a queue notice channel=%s error=%s", thread[1], slack_error(exc))
            return False
        return True
