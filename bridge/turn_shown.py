"""What a turn shows in Slack while it runs and once it has ended: Slack's agent session (a DM thread titled by
its first question, `processing` while the agents work, `active` after), or where sessions are refused the
fallback signs (presence.py) and then a done, stopped or failed reaction on the asking message."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.config import Settings
from bridge.domain import AgentRef, Turn
from bridge.presence import Presence, SignBudget, take_back
from bridge.slack.directory import Directory
from bridge.slack.post import SlackPoster
from bridge.slack.readable import readable
from bridge.slack.sessions import Sessions, session_title
from bridge.stopping import RunningTurn
from bridge.store.base import Store


class TurnShown:
    """One worker's showing of its turns; its sign budget is shared by them (a workspace's, in OAuth mode)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        poster: SlackPoster,
        sessions: Sessions,
        directory: Directory | None = None,
    ) -> None:
        self._settings, self._store, self._poster, self._sessions = settings, store, poster, sessions
        self._directory = directory  # names for the people and channels a title mentions
        self._signs = SignBudget()

    async def start(
        self, turn: Turn, turn_id: int, resumed: bool, agents: Sequence[AgentRef], running: RunningTurn
    ) -> Presence:
        """The session set `processing` (`running.session` says whether Slack took it), else the fallback signs
        scheduled; the presence returned is the turn's to end or abandon."""
        s = self._settings
        await self._poster.learn()  # whether agents' names can be custom usernames, before anything is built
        author = self._poster.author(agents[0].name) if agents else None
        names = self._directory
        title = session_title(await readable(turn.text, names.user_name, names.channel_name) if names else turn.text)
        if turn.channel_id.startswith("D") and not await self._store.earlier_turns_in_thread(
            turn.team_id, turn.channel_id, turn.thread_ts, turn_id
        ):  # a DM thread in Slack's agent view: titled by its first question, never renamed by a follow-up
            await self._sessions.set_title(turn.channel_id, turn.thread_ts, title)
        running.session = await self._sessions.set(
            turn.channel_id, turn.thread_ts, "processing", title, author, turn.user_id
        )
        presence = Presence(
            self._poster, self._sessions, turn.channel_id, turn.thread_ts, turn.message_ts, turn.user_id,
            s.slack_working_reaction, s.slack_working_after_seconds, self._signs, resumed,
        )
        if not running.session:
            presence.start([self._poster.shown_name(a.name) for a in agents])
        return presence

    async def end(self, turn: Turn, running: RunningTurn, presence: Presence, status: str) -> None:
        """The session set `active`; without one (or where Slack refuses it now) the signs are taken back and the
        turn's status put up as a reaction."""
        s = self._settings
        if running.session and await self._sessions.set(turn.channel_id, turn.thread_ts, "active", attempts=3):
            return
        await presence.end()
        mark = {"done": s.slack_done_reaction, "stopped": s.slack_stopped_reaction}.get(status, s.slack_failed_reaction)
        await self._poster.react(turn.channel_id, turn.message_ts, mark)

    async def take_back(self, turn: Turn) -> None:
        """What an earlier run of the turn, in a process gone since, put up (session or signs)."""
        await take_back(self._poster, self._sessions, turn, self._settings.slack_working_reaction)
