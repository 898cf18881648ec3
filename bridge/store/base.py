"""The store interface the relay and the CLI use; a backend is chosen by the `DATABASE_URL` scheme."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bridge.domain import AgentReply, Binding, RunnerChoice, Turn


class StoreError(Exception):
    """The database cannot be opened or used; the message says which and why, in plain words."""


@dataclass(frozen=True)
class HistoryEntry:
    action: str
    target: str
    runner: str
    actor: str
    at: datetime


class Store(Protocol):
    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def schema_version(self) -> int: ...

    async def get_binding(self, team_id: str, channel_id: str) -> Binding | None: ...

    async def put_binding(self, binding: Binding) -> Binding | None:
        """Save the binding; returns the one it replaced."""
        ...

    async def delete_binding(self, team_id: str, channel_id: str, actor: str) -> Binding | None: ...

    async def list_bindings(self, team_id: str | None = None) -> list[Binding]: ...

    async def set_runner(self, team_id: str, channel_id: str, runner: RunnerChoice, actor: str) -> None: ...

    async def history(self, team_id: str, channel_id: str, limit: int = 10) -> list[HistoryEntry]: ...

    async def accept_turn(self, turn: Turn, otid: str) -> int | None:
        """Record the turn durably; None when its event or its message was already accepted."""
        ...

    async def finish_turn(self, turn_id: int, status: str, error: str = "") -> None: ...

    async def record_post(self, turn_id: int, seq: int, agent_name: str, ts: str) -> None: ...

    async def notice_once(self, team_id: str, channel_id: str, kind: str) -> bool:
        """True the first time a notice of this kind is due for the channel, False after."""
        ...

    async def unseen(self, team_id: str, channel_id: str, agent_id: str) -> tuple[list[AgentReply], int]: ...

    async def delivered(
        self, team_id: str, channel_id: str, agent_id: str, upto: int, reply: AgentReply | None
    ) -> None: ...


class BindingTranscript:
    """Adapts the store to the runners' `Transcript` for one binding."""

    def __init__(self, store: Store, team_id: str, channel_id: str) -> None:
        self._store = store
        self._team = team_id
        self._channel = channel_id

    async def unseen(self, agent_id: str) -> tuple[list[AgentReply], int]:
        return await self._store.unseen(self._team, self._channel, agent_id)

    async def delivered(self, agent_id: str, upto: int, reply: AgentReply | None) -> None:
        await self._store.delivered(self._team, self._channel, agent_id, upto, reply)


def open_store(url: str) -> Store:
    if url.startswith("sqlite:"):
        from bridge.store.sqlite import SqliteStore

        return SqliteStore(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise StoreError(
        f"DATABASE_URL uses the scheme {scheme!r}, which this bridge does not support yet; "
        "use sqlite:///path/to/bridge.db"
    )
