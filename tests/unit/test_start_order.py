"""bridge/start_order.py: turns prepare a few at a time, in the order they were taken; a turn gives its place up
when its first send to Letta is journaled (the real journal and store), when its run ends, or after the hold; the
relay's runs hand each job its place."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

import bridge.turn_runs as turn_runs
from bridge.domain import Turn
from bridge.start_order import Place, StartOrder
from bridge.stopping import TrackedJournal
from bridge.store.base import Store
from bridge.store.database_url import open_store
from bridge.turns import Job, TurnWorker
from tests.unit.test_relay import Rig, Worker, mention, relaying, until


async def _enter(order: StartOrder, name: str, entered: list[str], leave: dict[str, asyncio.Event]) -> None:
    async with order.place():
        entered.append(name)
        await leave.setdefault(name, asyncio.Event()).wait()


def test_at_most_at_once_prepare_and_the_next_place_goes_to_the_first_that_asked() -> None:
    async def main() -> list[list[str]]:
        order, entered, leave = StartOrder(2, hold=30.0), [], {}
        names = ["a", "b", "c", "d", "e"]
        for n in names:
            leave[n] = asyncio.Event()
        tasks = [asyncio.create_task(_enter(order, n, entered, leave)) for n in names]
        seen = []
        await asyncio.sleep(0.05)
        seen.append(list(entered))
        leave["b"].set()
        await asyncio.sleep(0.05)
        seen.append(list(entered))
        for n in names:
            leave[n].set()
        await asyncio.gather(*tasks)
        seen.append(list(entered))
        return seen

    assert asyncio.run(main()) == [["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d", "e"]]


def test_a_turn_that_holds_its_place_longer_than_the_hold_gives_it_up() -> None:
    """One waiting on something slow before its send (an agent another turn holds) holds the others back no
    longer than the hold."""

    async def main() -> tuple[list[str], float]:
        order, entered, leave = StartOrder(1, hold=0.1), [], {}
        loop = asyncio.get_running_loop()
        began = loop.time()
        stuck = asyncio.create_task(_enter(order, "stuck", entered, leave))
        await asyncio.sleep(0)
        behind = asyncio.create_task(_enter(order, "behind", entered, leave))
        await until(lambda: "behind" in entered)
        waited = loop.time() - began
        still = list(entered)
        for event in leave.values():
            event.set()
        await asyncio.gather(stuck, behind)
        return still, waited

    entered, waited = asyncio.run(main())
    assert entered == ["stuck", "behind"]
    assert 0.08 < waited < 5.0


def test_a_place_given_up_twice_frees_one_place_only() -> None:
    async def main() -> list[str]:
        order, entered, leave = StartOrder(1, hold=30.0), [], {}
        async with order.place() as place:
            place.leave()
            place.leave()
        for n in ("x", "y"):
            leave[n] = asyncio.Event()
        tasks = [asyncio.create_task(_enter(order, n, entered, leave)) for n in ("x", "y")]
        await asyncio.sleep(0.05)
        seen = list(entered)
        for event in leave.values():
            event.set()
        await asyncio.gather(*tasks)
        return seen

    assert asyncio.run(main()) == ["x"]


def test_a_place_made_outside_an_order_holds_nothing() -> None:
    place = Place()
    assert not place.held
    place.leave()


def test_a_turn_gives_its_place_up_once_its_first_send_is_journaled(tmp_path: Path) -> None:
    """The runner journals each send just before it goes (TrackedJournal.sending): from then on the turn waits on
    Letta, and the next turn may prepare."""

    async def main() -> tuple[bool, bool, list[str]]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        turn_id = await store.accept_turn(mention(1, "hi"), "otid-1")
        assert turn_id is not None
        async with StartOrder(1, hold=30.0).place() as place:
            journal = TrackedJournal(store, turn_id, "otid-1", "T1", "C1", set(), None, place.leave)
            before = place.held
            await journal.sending("agent-1")
            after = place.held
        journaled = await store.sending_steps(turn_id)
        await store.close()
        return before, after, journaled

    assert asyncio.run(main()) == (True, False, {"agent-1": ""})


class HeldUntilSent(Worker):
    """Each turn 'sends' (gives its place up, as its journal does) when its text is let go, and ends at the end."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.sent: dict[str, asyncio.Event] = {}

    def send(self, text: str) -> None:
        self.sent.setdefault(text, asyncio.Event()).set()

    async def run(self, job: Job) -> str:
        self.jobs.append(job)
        await self.sent.setdefault(job.turn.text, asyncio.Event()).wait()
        job.place.leave()
        await self.go_on.wait()
        await self.store.finish_turn(job.turn_id, "done")
        return "done"


@pytest.fixture
def one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(turn_runs, "StartOrder", lambda: StartOrder(1, hold=30.0))


async def second_behind_first(rig: Rig) -> HeldUntilSent:
    """C1's turn running (holding the one place, not sent yet), then C2's accepted."""
    worker = rig.worker
    assert isinstance(worker, HeldUntilSent)
    await rig.relay.accept(mention(1, "first"))
    await until(lambda: bool(worker.jobs))
    await rig.relay.accept(Turn("T1", "C2", "2.000001", "2.000001", "U1", "second", "Ev2"))
    return worker


@pytest.mark.usefixtures("one_place")
def test_the_relay_runs_another_channel_s_turn_once_the_first_has_sent_not_before(tmp_path: Path) -> None:
    """One place: the second channel's turn waits while the first prepares, and starts as soon as the first has
    sent, while the first still waits for its answer."""

    async def main() -> list[list[str]]:
        async with relaying(tmp_path / "b.db", HeldUntilSent) as rig:
            worker = await second_behind_first(rig)
            await asyncio.sleep(0.2)
            seen = [worker.texts()]
            worker.send("first")
            await until(lambda: len(worker.jobs) == 2)
            seen.append(worker.texts())
            worker.send("second")
            return seen

    assert asyncio.run(main()) == [["first"], ["first", "second"]]


class Expecting(HeldUntilSent):
    """Records which turns it was told to expect, before each one's slot and place."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.expected: list[str] = []

    def expect(self, job: Job) -> None:
        self.expected.append(job.turn.text)


@pytest.mark.usefixtures("one_place")
def test_a_turn_waiting_for_its_place_has_its_lookups_started_meanwhile(tmp_path: Path) -> None:
    """A turn's channel name is asked for before it waits for a place (TurnWorker.expect), so that in a burst the
    round trip to Slack overlaps the wait instead of lengthening the preparation that others wait behind."""

    async def main() -> tuple[list[str], list[str]]:
        async with relaying(tmp_path / "b.db", Expecting) as rig:
            worker = await second_behind_first(rig)
            assert isinstance(worker, Expecting)
            await asyncio.wait_for(until(lambda: len(worker.expected) == 2), 5)
            seen = (list(worker.expected), worker.texts())
            worker.send("first")
            worker.send("second")
            return seen

    assert asyncio.run(main()) == (["first", "second"], ["first"])


def test_the_worker_asks_for_the_channel_name_ahead_unless_the_turn_was_stopped() -> None:
    asked: list[str] = []
    worker = object.__new__(TurnWorker)
    worker._directory = SimpleNamespace(channel_name_soon=asked.append)  # type: ignore[assignment]
    worker.expect(Job(mention(1, "hi"), 1, "otid-1"))
    worker.expect(Job(Turn("T1", "C2", "2.000001", "2.000001", "U1", "hi", "Ev2"), 2, "otid-2", stopped_by="U9"))
    assert asked == ["C1"]


def test_in_oauth_mode_a_served_workspace_s_own_worker_asks_ahead() -> None:
    """The relay's worker there holds no directory of its own: each workspace's worker has its Slack client. A
    workspace this process has not served yet has none until its first turn builds it."""
    from bridge.workspace_relay import WorkspaceWorkers
    from bridge.workspaces import Workspaces

    expected: list[str] = []
    workspaces = object.__new__(Workspaces)
    worker = SimpleNamespace(expect=lambda job: expected.append(job.turn.text))
    workspaces._kits = {"T1": SimpleNamespace(worker=worker)}  # type: ignore[dict-item]
    workers = WorkspaceWorkers(workspaces)
    workers.expect(Job(mention(1, "served"), 1, "otid-1"))
    workers.expect(Job(Turn("T2", "C1", "1.000001", "1.000001", "U1", "new", "Ev2"), 2, "otid-2"))
    assert expected == ["served"]
