"""A Slack thread as Letta conversations: one per agent, made on the thread's first send to that agent.

Letta 0.16.8 and Cloud keep a conversation's messages apart from the agent's other threads (its memory is
shared), so two threads of one channel neither mix in an agent's context nor wait for each other. Where the
server has no conversations, or the channel's switch is off, every thread shares the agent's one context and
a channel's turns keep running one at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bridge.domain import Binding
from bridge.letta.chooser import RunnerChooser
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError
from bridge.store.base import Store
from bridge.targets import TargetError

log = logging.getLogger(__name__)


class ThreadConversations:
    """The runners' `Threads` for one Slack thread: the stored conversation of each agent, or a new one stored
    before anything is sent to it (so a restarted bridge looks a send up in the same conversation)."""

    def __init__(
        self,
        store: Store,
        client: LettaClient,
        team_id: str,
        channel_id: str,
        thread_ts: str,
        history: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._key = (team_id, channel_id, thread_ts)
        self._history = history
        self._read: asyncio.Task[str] | None = None  # the thread so far, read once for every agent owed it
        self._owed: set[str] = set()  # agents whose conversation was made in this turn and not yet sent to
        self._made: set[str] = set()  # the same, for `fresh`, whether or not the thread so far was owed any words
        self._first: set[str] = set()  # agents whose send being made is the first to a conversation made this turn

    async def conversation(self, agent_id: str) -> str | None:
        stored = await self._store.conversation(self._key, agent_id)
        if stored is not None:
            return stored
        try:
            made = await self._make(agent_id)
        except LettaError as error:
            if error.kind == Kind.ROUTE_MISSING and not self._client.app_server:  # an App Server always has them
                log.info("letta has no conversations; the agent's own context is used agent=%s", agent_id)
                return None
            raise
        stored = await self._store.put_conversation(self._key, agent_id, made)
        if stored == made:
            self._owed.add(agent_id)
            self._made.add(agent_id)
        else:  # a racing writer's conversation is the thread's (theirs to fill): this one would be left empty
            await self._discard(agent_id, made)
        return stored

    async def _discard(self, agent_id: str, made: str) -> None:
        if self._client.app_server:
            return  # its conversations are not REST's to delete
        try:
            await self._client.delete_conversation(made)
        except LettaError as error:
            log.warning("conversation not deleted agent=%s conversation=%s kind=%s", agent_id, made, error.kind)
            return
        log.info("conversation deleted, another run made the thread's agent=%s conversation=%s", agent_id, made)

    async def renew(self, agent_id: str, gone: str) -> str:
        log.warning("conversation gone on letta agent=%s conversation=%s thread=%s", agent_id, gone, self._key[2])
        made = await self._make(agent_id)
        stored = await self._store.put_conversation(self._key, agent_id, made, replacing=gone)
        if stored == made:
            self._owed.add(agent_id)
            self._made.add(agent_id)
        else:  # a racing run replaced it first: this one would be left on Letta, empty
            await self._discard(agent_id, made)
        return stored

    async def forget(self, agent_id: str, stale: str) -> None:
        """Leave `stale` for good. Nothing is made now: the next turn would not know the new one starts empty, so
        the conversation is made when next needed, where `conversation` marks it owed the thread so far."""
        log.info("conversation left agent=%s conversation=%s thread=%s", agent_id, stale, self._key[2])
        await self._store.forget_conversation(self._key, agent_id, stale)
        self._owed.discard(agent_id)
        self._made.discard(agent_id)
        self._first.discard(agent_id)

    async def unsent(self, agent_id: str, conversation: str) -> None:
        """The first send to a conversation made for the agent never reached it: that conversation is left (the
        next turn makes one, owed the thread so far again), or the thread would be lost to the agent for good: a
        stored conversation is taken to hold it, the turn's own words and thread context included."""
        await self.forget(agent_id, conversation)
        await self._discard(agent_id, conversation)

    async def earlier(self, agent_id: str) -> str:
        """The thread so far, once, for an agent whose conversation was just made: it starts with nothing of the
        thread, which may have had turns before (see InputAssembly.history). Empty otherwise. Called before each
        send, so `fresh` then tells whether that send is the conversation's first."""
        if agent_id in self._made:
            self._made.discard(agent_id)
            self._first.add(agent_id)
        else:
            self._first.discard(agent_id)
        if agent_id not in self._owed or self._history is None:
            return ""
        self._owed.discard(agent_id)
        if self._read is None:
            self._read = asyncio.ensure_future(self._history())
        return await asyncio.shield(self._read)

    def fresh(self, agent_id: str) -> bool:
        """Whether the send just made (the one `earlier` was last asked for) is the first to a conversation made
        for the agent this turn: refused, it leaves nothing of the thread there, though it carried it."""
        return agent_id in self._first

    async def _make(self, agent_id: str) -> str:
        """A new conversation; one whose creation answer was lost is looked for first (by its summary, made since
        it was asked for), so that the thread's next turn does not make a second and leave the first on Letta."""
        summary = f"Slack {self._key[1]} {self._key[2]}"
        asked = datetime.now(UTC)
        try:
            made = await self._client.create_conversation(agent_id, summary=summary)
        except LettaError as error:
            if not error.outcome_unknown or self._client.app_server:
                raise
            try:
                found = await self._client.made_conversation(agent_id, summary, asked)
            except LettaError:
                raise error from None
            if found is None:
                raise
            log.info("conversation found after its creation answer was lost agent=%s conversation=%s thread=%s",
                     agent_id, found.id, self._key[2])
            return found.id
        log.info("conversation created agent=%s conversation=%s thread=%s", agent_id, made.id, self._key[2])
        return made.id


DefaultBinding = Callable[[str, str], Awaitable[Binding | None]]


class ThreadPolicy:
    """Whether a binding's threads are conversations: the channel's switch, the bridge runner (a server-run group
    has no conversations), and a server that has them."""

    def __init__(
        self,
        store: Store,
        chooser: RunnerChooser,
        enabled: bool,
        off_in: frozenset[str],
        default: DefaultBinding | None = None,
    ) -> None:
        self._store = store
        self._default = default  # an unbound channel's or DM's binding (the default target), if any
        self._chooser = chooser
        self._enabled = enabled
        self._off_in = off_in

    def switched_on(self, channel_id: str) -> bool:
        if self._chooser.client.app_server:
            return True
        return self._enabled and channel_id not in self._off_in

    async def threaded(self, binding: Binding) -> bool:
        """Raises LettaError while the server cannot say whether it has conversations."""
        return await self._chooser.choice(binding) == "bridge" and await self.bridge_run_threaded(binding.channel_id)

    async def bridge_run_threaded(self, channel_id: str) -> bool:
        """For a turn the bridge runner runs. Raises LettaError while the server cannot say."""
        if self._chooser.client.app_server:
            return True  # every thread is a conversation there: an agent's `default` is never used
        return self.switched_on(channel_id) and await self._chooser.client.has_conversations()

    async def in_parallel(self, team_id: str, channel_id: str) -> bool:
        """For the relay: may the binding's threads run at the same time? In doubt, no (in order is always safe).
        A DM (or unbound channel) on the default target has no stored binding: its threads are conversations too."""
        if not self.switched_on(channel_id):
            return False
        try:
            binding = await self._store.get_binding(team_id, channel_id)
            if binding is None and self._default is not None:
                binding = await self._default(team_id, channel_id)
            return binding is not None and await self.threaded(binding)
        except (LettaError, TargetError):
            return False

    def conversations(
        self, team_id: str, channel_id: str, thread_ts: str, history: Callable[[], Awaitable[str]] | None = None
    ) -> ThreadConversations:
        return ThreadConversations(self._store, self._chooser.client, team_id, channel_id, thread_ts, history)
