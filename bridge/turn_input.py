"""What the agents are sent for a turn: the person's words under the context prefix (who speaks, in which
channel), the thread's earlier messages when the bot is first asked inside an existing thread, and the turn's
files as the agents get them (prepared once and kept, so a resumed turn sends the same)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bridge.attachments import Prepared, describe, prepare
from bridge.config import Settings
from bridge.domain import Turn
from bridge.letta.quoting import QUOTED_CHARS, after_prefix, block, label, person_label, quoted
from bridge.slack.decide import clean_text
from bridge.slack.directory import Directory, Earlier
from bridge.slack.files import FileFetcher
from bridge.slack.readable import readable
from bridge.store.attachments import AttachmentStore
from bridge.store.base import Store

THREAD_CONTEXT_HEADER = "Earlier in this Slack thread, before you were asked:"
THREAD_HISTORY_HEADER = "Earlier in this Slack thread, before this conversation of yours began:"
THREAD_CONTEXT_CHARS = QUOTED_CHARS


ROOT_CUT = " … (cut)"  # ends a thread's first message shortened to fit beside the newest ones


def _line(m: Earlier, agents: Sequence[str], replies: Mapping[str, tuple[str, str]], text: str | None = None) -> str:
    """One earlier message as a quoted line (`text`, when given, in place of its own words)."""
    if m.ts in replies:
        return quoted("agent", replies[m.ts][0], (replies[m.ts][1] if text is None else text)[:THREAD_CONTEXT_CHARS])
    said = clean_text(m.text, None) if text is None else text
    files = [json.loads(describe(f)) for f in m.files]
    return quoted("person", person_label(m.name, m.user_id, agents), said[:THREAD_CONTEXT_CHARS], files)


def _cut_root(m: Earlier, agents: Sequence[str], replies: Mapping[str, tuple[str, str]], room: int) -> str | None:
    """The thread's first message in at most `room` characters, its words cut and marked as cut; None when not
    even its label fits. The longest prefix that fits is searched for: a quote or a newline takes two characters
    or more in the quoted line, so the line's excess says little of how many words to cut."""
    text = replies[m.ts][1] if m.ts in replies else clean_text(m.text, None)
    text = text[:THREAD_CONTEXT_CHARS]
    whole = _line(m, agents, replies, text)
    if len(whole) <= room:
        return whole
    fits, over = 0, len(text)
    while fits < over:
        middle = (fits + over + 1) // 2
        if len(_line(m, agents, replies, text[:middle].rstrip() + ROOT_CUT)) <= room:
            fits = middle
        else:
            over = middle - 1
    return _line(m, agents, replies, text[:fits].rstrip() + ROOT_CUT) if fits else None


def thread_context(
    earlier: Sequence[Earlier],
    agents: Sequence[str],
    replies: Mapping[str, tuple[str, str]] | None = None,
    header: str = THREAD_CONTEXT_HEADER,
    root: str = "",
) -> str:
    """A thread's earlier messages (oldest first) as a quoted block, newest kept within THREAD_CONTEXT_CHARS, and
    the thread's first message (`root`, its ts) kept too when it is among them: what the thread is about (the
    alert, the question) is what a long thread must not lose first. A first message longer than half the room is
    cut to half (marked as cut), and to the room left when even so it does not fit beside the newest; dropped
    only when not even its label fits. Each person
    labelled as no agent is, the files they shared described (never fetched); the bot's posts found in `replies`
    (by ts: agent name, its words) quoted as that agent's."""
    replies = replies or {}
    lines = [_line(m, agents, replies) for m in earlier]
    keep = 1 if root and earlier and earlier[0].ts == root else 0
    if keep and len(lines[0]) > THREAD_CONTEXT_CHARS // 2:  # a long alert does not crowd out the discussion under it
        lines[0] = _cut_root(earlier[0], agents, replies, THREAD_CONTEXT_CHARS // 2) or lines[0]
    while len(lines) > 1 + keep and sum(len(line) + 1 for line in lines) > THREAD_CONTEXT_CHARS:
        lines.pop(keep)  # whole lines only, the oldest first (after the root): a cut line would be no line at all
    if keep and len(lines) == 2 and sum(len(line) + 1 for line in lines) > THREAD_CONTEXT_CHARS:
        cut = _cut_root(earlier[0], agents, replies, THREAD_CONTEXT_CHARS - len(lines[1]) - 2)
        lines = [lines[1]] if cut is None else [cut, lines[1]]  # the newest, which the mention answers, stays whole
    return block(header, lines) + "\n\n" if lines else ""


@dataclass(frozen=True)
class Assembled:
    text: str  # all the agents read of the turn, in order: thread context, files, prefix, the person's words
    speaker: str  # the person's label (never an agent's name)
    files: Prepared


class InputAssembly:
    def __init__(self, settings: Settings, store: Store, directory: Directory, fetcher: FileFetcher) -> None:
        self._settings = settings
        self._store = store
        self._directory = directory
        self._fetcher = fetcher
        self._attachments = AttachmentStore(store)

    async def assemble(self, turn: Turn, turn_id: int, agents: Sequence[str]) -> Assembled:
        said = (turn.channel_id, turn.message_ts)  # where Slack embeds the profile of another organisation's person
        speaker = person_label(await self._directory.user_name(turn.user_id, said), turn.user_id, agents)
        channel = turn.channel_id  # a DM (a D… id): no name to ask Slack for
        name = "" if self._directory.is_dm(channel) else await self._directory.channel_name(channel)
        prefix = self._prefix(speaker, channel, name)
        context = await self._thread_context(turn, turn_id, agents)
        files = await self._files(turn, turn_id)
        words = await self._readable(turn.text)
        return Assembled(context + files.text + after_prefix(prefix, words), speaker, files)

    def _prefix(self, speaker: str, channel_id: str, name: str) -> str:
        """The context prefix; a DM or group DM has no name people see (a DM's id, a group DM's generated
        mpdm-… name): `#{channel}`, or `{channel}`, is said as "a direct message" or "a group direct message"."""
        template = self._settings.letta_context_prefix
        words = self._directory.conversation_words(channel_id)
        if words is None:
            return template.format(user=speaker, channel=label(name, channel_id))
        return template.replace("#{channel}", "{channel}").format(user=speaker, channel=words)

    async def _readable(self, text: str) -> str:
        """People, channels and groups by the names Slack shows, not their ids."""
        return await readable(text, self._directory.user_name, self._directory.channel_name)

    async def _readable_earlier(self, earlier: Sequence[Earlier]) -> list[Earlier]:
        """Each message read at once (a name is looked up once however many ask for it)."""

        async def one(m: Earlier) -> Earlier:
            return replace(m, text=await self._readable(m.text)) if m.user_id else m

        return list(await asyncio.gather(*(one(m) for m in earlier)))

    async def drop(self, turn_id: int) -> None:
        """The turn is over: its files' bytes are kept no longer."""
        await self._attachments.drop(turn_id)

    async def _thread_context(self, turn: Turn, turn_id: int, agents: Sequence[str]) -> str:
        """The thread's earlier messages, once: when the bot is first mentioned inside an existing thread, until
        a turn there has reached the agents (an unbound or refused one gave them nothing)."""
        if turn.thread_ts == turn.message_ts:
            return ""
        if await self._store.earlier_turns_in_thread(turn.team_id, turn.channel_id, turn.thread_ts, turn_id):
            return ""
        earlier = await self._directory.thread_before(turn.channel_id, turn.thread_ts, turn.message_ts)
        if not earlier:
            return ""
        return thread_context(await self._readable_earlier(earlier), agents, root=turn.thread_ts)

    async def history(self, turn: Turn, turn_id: int, agents: Sequence[str]) -> str:
        """The thread so far, for an agent whose conversation of it was made after turns there reached agents
        (conversations switched on, one deleted on Letta and replaced, an agent new to the thread): people's
        messages and the agents' replies before this turn, as the thread context is bounded; empty when no
        earlier turn reached the agents (the thread context, if any, is then in the turn's text already). A mention
        that starts its thread has nothing before it there: nothing is read."""
        if turn.thread_ts == turn.message_ts:
            return ""
        if not await self._store.earlier_turns_in_thread(turn.team_id, turn.channel_id, turn.thread_ts, turn_id):
            return ""
        replies = await self._store.thread_replies(turn.team_id, turn.channel_id, turn.thread_ts)
        earlier = await self._directory.thread_before(
            turn.channel_id, turn.thread_ts, turn.message_ts, ours=frozenset(replies)
        )
        return thread_context(
            await self._readable_earlier(earlier), agents, replies, THREAD_HISTORY_HEADER, root=turn.thread_ts
        )

    async def _files(self, turn: Turn, turn_id: int) -> Prepared:
        """The turn's files as the agents get them: prepared once and kept, so a resumed turn sends the same."""
        if not turn.files:
            return Prepared()
        kept = await self._attachments.kept(turn_id)
        if kept is None:
            s = self._settings
            fresh = await prepare(
                turn.files, self._fetcher.fetch, s.file_max_bytes, s.file_inline_text, s.file_inline_chars
            )
            kept = await self._attachments.keep(turn_id, fresh.dump())
        return Prepared.load(kept)
