"""bridge_turns_total adds up to the turns accepted: a turn withdrawn before it ran (its mention deleted while it
waited, bridge/relay.py's `withdraw`) is counted once, as `withdrawn`, whether the binding's worker had not yet
read it or had read it and was waiting for a turn slot; one stopped while it waited is counted once, as `stopped`,
by the stop (bridge/stopping.py); a resumed turn stopped before it was marked running once, when its stop ends; a
turn withdrawn as its channel turns out unbound is neither told so nor counted `unbound`. The relay and the store
(a real SQLite file) are the real ones; the worker is a stand-in that ends a turn as bridge/turns.py does, or the
real TurnWorker up to where it would ask the agents."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.approval_desk import ApprovalDesk
from bridge.domain import AgentRef, Binding, Target
from bridge.logs import Redactor
from bridge.metrics import Metrics
from bridge.relay import Relay
from bridge.slack.post import Author, Part
from bridge.stop_end import StopEnd
from bridge.stop_request import Stopping
from bridge.stopping import TurnStops
from bridge.store.base import Store
from bridge.store.database_url import open_store
from bridge.store.leases import BindingLeases
from bridge.store.locks import AckFirst
from bridge.turn_flush import TurnFlush
from bridge.turn_shown import TurnShown
from bridge.turns import NOT_TAKEN, Job, TurnWorker
from tests.unit.test_relay import ThreadWorker, Worker, mention, until


class Marking(ThreadWorker):
    """Marks each turn running before it runs it, as TurnWorker._take does: a turn no longer waiting (withdrawn
    or stopped since the worker read it) is not run, and not its to count (NOT_TAKEN)."""

    async def run(self, job: Job) -> str:
        if await self.store.take_turn(job.turn_id) is None:
            return NOT_TAKEN
        return await super().run(job)


def counted(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "bridge_turns_total"
    }


async def relay_on(store: Store, worker: Worker, metrics: Metrics, max_concurrent: int) -> Relay:
    return Relay(store, worker, None, max_concurrent=max_concurrent, leases=BindingLeases(store, 3.0), metrics=metrics)  # type: ignore[arg-type]


def test_a_turn_withdrawn_before_its_worker_read_it_is_counted_withdrawn(tmp_path: Path) -> None:
    """The usual case: the mention waited behind another turn of its channel and was deleted. Before, it was
    never counted: bridge_turns_total fell one short of the turns accepted."""

    async def main() -> dict[str, float]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        metrics, worker = Metrics(), Worker(store)
        relay = await relay_on(store, worker, metrics, 8)
        try:
            await relay.accept(mention(1, "first"))
            await until(lambda: bool(worker.jobs))  # the channel's worker holds the first turn
            await relay.accept(mention(2, "second"))
            await relay.withdraw("T1", "C1", "2.000001")
            worker.finish()
            await until(lambda: "done" in counted(metrics))
            await asyncio.sleep(0.1)
            assert worker.texts() == ["first"]
            return counted(metrics)
        finally:
            worker.finish()
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == {"done": 1.0, "withdrawn": 1.0}


def test_a_turn_withdrawn_while_its_job_waited_for_a_slot_is_counted_once(tmp_path: Path) -> None:
    """Threads at once, one turn slot: thread B's turn was read and waited for the slot thread A's turn held when
    its mention was deleted. It is not run; counted as withdrawn, and not a second time as stopped."""

    async def main() -> dict[str, float]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        metrics, worker = Metrics(), Marking(store)
        relay = await relay_on(store, worker, metrics, 1)
        relay.notices.waiting = lambda turn: None  # type: ignore[method-assign]
        try:
            await relay.accept(mention(1, "A1"))
            await until(lambda: bool(worker.jobs))  # A1 holds the one slot
            await relay.accept(mention(2, "B1"))
            await asyncio.sleep(0.2)  # B1's thread has read it, and waits for the slot
            await relay.withdraw("T1", "C1", "2.000001")
            worker.let_go("A1")
            await until(lambda: sum(counted(metrics).values()) >= 2)
            await asyncio.sleep(0.2)
            assert worker.texts() == ["A1"]
            return counted(metrics)
        finally:
            worker.finish()
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == {"done": 1.0, "withdrawn": 1.0}


class Recorder:
    """Slack as a turn's end sees it: any async call recorded; a post answers its ts, anything else None."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.client = SimpleNamespace(chat_update=lambda **_: asyncio.sleep(0))

    def author(self, _name: str) -> Author:
        return Author()

    def parts(self, _agent: Any, text: str) -> list[Any]:
        return [Part(text, None)]

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **_: Any) -> Any:
            self.calls.append((name, *args))
            return "9.000001" if name == "post" else None

        return call


class Racing:
    """The store, whose first binding lookup (the first thing a turn's run reads) lets `meanwhile` happen first:
    a person's deletion or Stop landing between the worker's read of the turn and its mark."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.meanwhile: Callable[[], Awaitable[object]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_binding(self, team_id: str, channel_id: str) -> Binding | None:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            await meanwhile()
        return await self._store.get_binding(team_id, channel_id)


def real_worker(store: Any, poster: Recorder) -> TurnWorker:
    """The real TurnWorker up to where it would show the turn working and ask the agents (never reached here)."""
    s = SimpleNamespace(
        default_target=(), slack_command="/letta", shows_reasoning=lambda _c: False, slack_live_edit_seconds=1,
        slack_working_reaction="eyes", slack_stopped_reaction="black_square_for_stop", approval_timeout_seconds=60,
        slack_approve_by="asker", slack_approve_users=(), slack_working_after_seconds=100, slack_feedback=False,
        slack_agents={},
    )
    worker = object.__new__(TurnWorker)
    worker._settings, worker._store, worker._poster, worker._fallback = s, store, poster, None  # type: ignore[assignment]
    worker._live, worker.sessions = None, Recorder()  # type: ignore[assignment]
    worker.ack_first, worker._redactor, worker._outboxes, worker._journaled = AckFirst(), Redactor(()), {}, {}
    worker.desk = ApprovalDesk(store, s)  # type: ignore[arg-type]
    worker.stops = TurnStops(store, SimpleNamespace(), 0)  # type: ignore[arg-type]  # nothing in flight to cancel
    worker._posting = TurnFlush(s, poster, worker.stops, worker.ack_first)  # type: ignore[arg-type]
    worker._shown = TurnShown(s, store, poster, worker.sessions)  # type: ignore[arg-type]
    worker.stop_end = StopEnd(store, worker.stops, poster, worker.sessions, worker.desk, s)  # type: ignore[arg-type]
    worker.threads = SimpleNamespace(in_parallel=lambda *_: asyncio.sleep(0, False))  # type: ignore[assignment]
    worker._converse = lambda *_: pytest.fail("the agents were asked")  # type: ignore[method-assign]
    worker._directory = SimpleNamespace(channel_name_soon=lambda _channel: None)  # type: ignore[assignment]
    return worker


async def nobody_may_configure() -> bool:
    return False


class NotHere:
    """No turn runs in this process: the stop is the store's only."""

    async def stop(self, turn_id: int, by: str) -> bool:
        return False


def test_a_turn_stopped_while_it_waited_is_counted_once_by_the_stop(tmp_path: Path) -> None:
    """Stop pressed in a thread whose turn waited behind another thread's: the store's update took it from the
    queue and no worker ever reads it. Before, it was never counted. A second process taking the same stop (a
    copy of the event, or a second press) changes no row and counts nothing."""

    async def main() -> tuple[dict[str, float], dict[str, float]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        metrics, other, worker = Metrics(), Metrics(), Worker(store)
        relay = await relay_on(store, worker, metrics, 8)
        try:
            await relay.accept(mention(1, "first"))
            await until(lambda: bool(worker.jobs))  # the channel's worker holds the first turn
            await relay.accept(mention(2, "second"))
            stopped = await Stopping(store, NotHere(), metrics=metrics).request(
                "T1", "C1", "2.000001", "U1", nobody_may_configure
            )
            again = await Stopping(store, NotHere(), metrics=other).request(
                "T1", "C1", "2.000001", "U1", nobody_may_configure
            )
            assert (stopped.stopped, again.stopped) == (1, 0)
            worker.finish()
            await until(lambda: "done" in counted(metrics))
            await asyncio.sleep(0.1)
            assert worker.texts() == ["first"]
            return counted(metrics), counted(other)
        finally:
            worker.finish()
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == ({"done": 1.0, "stopped": 1.0}, {})


def test_a_resumed_turn_stopped_before_it_was_marked_running_is_counted_once(tmp_path: Path) -> None:
    """A turn a dead process was running, read by the worker taking it over and stopped before the worker marked
    it running: the row is `stopping`, so marking it fails, and the same worker then ends its stop (stop_end.py).
    Before, it was counted `stopped` twice: when the mark failed, and when its stop ended."""

    async def main() -> tuple[dict[str, float], list[tuple[Any, ...]]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        await store.put_binding(Binding("T1", "C1", Target("agents", (AgentRef("agent-1", "finn"),))))
        turn_id = await store.accept_turn(mention(1, "first"), "otid-1")
        assert turn_id is not None and await store.take_turn(turn_id)  # the dead process's run
        racing, poster, metrics = Racing(store), Recorder(), Metrics()
        stopping = Stopping(store, NotHere(), metrics=metrics)
        racing.meanwhile = lambda: stopping.request("T1", "C1", "1.000001", "U1", nobody_may_configure)
        relay = await relay_on(racing, real_worker(racing, poster), metrics, 8)  # type: ignore[arg-type]
        try:
            await relay.resume()
            await until(lambda: bool(counted(metrics)))
            await asyncio.sleep(0.3)
            assert await store.count_unfinished() == 0 and await store.turn_stopped_by(turn_id) == "U1"
            return counted(metrics), [c for c in poster.calls if c[0] == "post"]
        finally:
            await relay.stop(1.0)
            await store.close()

    outcomes, posts = asyncio.run(main())
    assert outcomes == {"stopped": 1.0}
    assert [p[3].text for p in posts] == ["Stopped by <@U1>."]


def test_a_turn_withdrawn_as_its_channel_turns_out_unbound_is_not_told_it_is_unbound(tmp_path: Path) -> None:
    """The mention is deleted while the worker looks up the channel's binding, which there is none of. Before, the
    thread was told the channel is not connected, under a question the person had taken back, and the turn was
    counted twice: `withdrawn`, and `unbound`."""

    async def main() -> tuple[dict[str, float], list[tuple[Any, ...]]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        racing, poster, metrics = Racing(store), Recorder(), Metrics()
        relay = await relay_on(racing, real_worker(racing, poster), metrics, 8)  # type: ignore[arg-type]
        racing.meanwhile = lambda: relay.withdraw("T1", "C1", "1.000001")
        relay.notices.withdrawn = lambda _thread: None  # type: ignore[method-assign]
        try:
            await relay.accept(mention(1, "first"))
            await until(lambda: bool(counted(metrics)))
            await asyncio.sleep(0.3)
            assert await store.count_unfinished() == 0
            return counted(metrics), [c for c in poster.calls if c[0] == "post"]
        finally:
            await relay.stop(1.0)
            await store.close()

    outcomes, posts = asyncio.run(main())
    assert posts == []
    assert outcomes == {"withdrawn": 1.0}
