"""A turn a killed process was running, resumed after a restart in a channel disconnected meanwhile
(bridge/turns.py's unbound end, handed the job by bridge/relay.py): it says the channel is not connected, and takes
back the session or the working signs its earlier run put up. A turn no run had started put none up: nothing is
taken back (no session is made for it). Slack is a double; the store is a real SQLite file, the relay the real
one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.domain import AgentRef, Binding, Target, Turn
from bridge.logs import Redactor
from bridge.relay import Relay
from bridge.stopping import TurnStops
from bridge.store.database_url import open_store
from bridge.store.locks import AckFirst
from bridge.turn_flush import TurnFlush
from bridge.turn_shown import TurnShown
from bridge.turns import TurnWorker
from tests.unit.test_turn_end import Poster, Recorder

TURN = Turn("T1", "C1", "1.000001", "1.000001", "U1", "hi", "Ev1")


class Sessions(Recorder):
    """setStatus answering as Slack does for an app declared as an agent (`works`), or refusing it."""

    def __init__(self, works: bool) -> None:
        super().__init__()
        self.works = works

    async def set(self, *args: Any, **kwargs: Any) -> bool:
        self.calls.append(("set", *args[:3]))
        return self.works


def restarted_worker(store: Any, sessions: Sessions) -> tuple[TurnWorker, Poster, Recorder]:
    """The new process's worker, as far as an unbound turn's end uses it."""
    s = SimpleNamespace(
        slack_command="/letta", slack_configure_by="admins", slack_configure_users=(),
        slack_working_reaction="eyes", slack_live_edit_seconds=1, slack_feedback=False,
        shows_reasoning=lambda _c: False,
    )
    worker = object.__new__(TurnWorker)
    poster, live = Poster(), Recorder()
    worker._settings, worker._store, worker._poster = s, store, poster  # type: ignore[assignment]
    worker._live, worker.sessions, worker._fallback = live, sessions, None  # type: ignore[assignment]
    worker.ack_first, worker._redactor, worker._outboxes, worker._journaled = AckFirst(), Redactor(()), {}, {}
    worker._told_unbound = {}
    worker.stops = TurnStops(store, SimpleNamespace(), 0)  # type: ignore[arg-type]
    worker._posting = TurnFlush(s, poster, worker.stops, worker.ack_first)  # type: ignore[arg-type]
    worker._shown = TurnShown(s, store, poster, sessions)  # type: ignore[arg-type]
    worker._directory = SimpleNamespace(channel_name_soon=lambda _channel: None)  # type: ignore[assignment]

    async def in_parallel(*_: str) -> bool:
        return False

    worker.threads = SimpleNamespace(in_parallel=in_parallel)  # type: ignore[assignment]
    return worker, poster, live


@pytest.mark.parametrize("session", [True, False], ids=["session", "fallbacks"])
@pytest.mark.parametrize("started", [True, False], ids=["was-running", "never-started"])
def test_a_resumed_turn_in_a_channel_disconnected_meanwhile_takes_its_signs_back(
    tmp_path: Path, session: bool, started: bool
) -> None:
    """Before, the unbound end posted its notice and marked the turn: the session stayed `processing` (Slack's
    spinner and Stop button for good), or the 👀 and the status line stayed up."""

    async def main() -> tuple[list[Any], list[Any], list[Any], int]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            await store.put_binding(Binding("T1", "C1", Target("agents", (AgentRef("agent-1", "alice"),))))
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None
            if started:  # the killed process was running it (its session or signs were up)
                assert await store.take_turn(turn_id)
                await store.live_started(turn_id, "step-1:0", "alice", "5.000001")  # alice's reply, growing
            assert await store.delete_binding("T1", "C1", "U1") is not None  # disconnected while it was down
            sessions = Sessions(session)
            worker, poster, live = restarted_worker(store, sessions)
            relay = Relay(store, worker, poster, max_concurrent=2)  # type: ignore[arg-type]
            await relay.resume()
            for _ in range(500):
                if await store.count_unfinished() == 0:
                    break
                await asyncio.sleep(0.01)
            await relay.stop(1.0)
            return poster.calls, sessions.calls, live.calls, await store.count_unfinished()
        finally:
            await store.close()

    posted, set_calls, live_calls, unfinished = asyncio.run(main())
    assert unfinished == 0
    [notice] = [c[3].text for c in posted if c[0] == "post"]
    assert notice.startswith("This channel was disconnected from Letta")  # it was, while the bridge was down
    signs = [c[:4] for c in posted if c[0] in ("react", "unreact", "status")]
    if started:  # the draft the killed process left is stopped, not left streaming for good
        assert [c[:3] for c in live_calls] == [("close", "C1", "5.000001")]
    if not started:
        assert set_calls == [] and signs == [] and live_calls == []
    elif session:
        assert set_calls == [("set", "C1", "1.000001", "active")] and signs == []
    else:
        assert set_calls == [("set", "C1", "1.000001", "active")]
        assert signs == [("unreact", "C1", "1.000001", "eyes"), ("status", "C1", "1.000001", "")]
