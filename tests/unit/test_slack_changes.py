"""What Slack changed after the bridge stored it (bridge/store/slack_changes.py), on both backends."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from bridge.domain import AgentRef, AgentReply, Binding, SharedFile, Target, Turn
from bridge.store import Store
from bridge.store.conversations import thread_scope
from bridge.store.database_url import open_store
from bridge.store.slack_changes import edit_turn, move_after_turn, move_channel, move_channel_running, withdraw_turn
from bridge.turns import Job
from tests.unit.test_store import run

ALICE, BOB = AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob")
CREW = Target(kind="group", agents=(ALICE, BOB), group_id="group-1", manager_type="round_robin")


async def words_taken(store: Store, turn_id: int) -> str | None:
    taken = await store.take_turn(turn_id)
    return taken.words if taken is not None else None


async def _answer(store: Store, turn_id: int, scope: str, agent: AgentRef, text: str) -> list[str]:
    unseen, upto = await store.unseen("T1", scope, agent.id, from_start=scope != "G1")
    reply = AgentReply(agent.name, text, agent.id)
    await store.step_answered(turn_id, agent.id, [reply], None, ("T1", scope, agent.id, upto))
    return [r.text for r in unseen]


def test_a_channel_whose_id_changed_keeps_its_binding_threads_and_transcripts(database_url: str) -> None:
    async def body(store: Store) -> None:
        await store.put_binding(Binding("T1", "G1", CREW, bound_by="U1"))
        await store.put_binding(Binding("T1", "G10", CREW))  # an id the old one is a prefix of: left alone
        done = await store.accept_turn(Turn("T1", "G1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        running = await store.accept_turn(Turn("T1", "G1", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        waiting = await store.accept_turn(Turn("T1", "G1", "1.000003", "1.000003", "U1", "c", "Ev3"), "o3")
        assert done and running and waiting
        await store.finish_turn(done, "done")
        await store.take_turn(running)
        thread = thread_scope("G1", "1.000001")
        await _answer(store, done, "G1", ALICE, "alice in the channel")
        await _answer(store, done, thread, ALICE, "alice in the thread")
        await _answer(store, done, thread_scope("G10", "1.000001"), ALICE, "alice elsewhere")
        await store.put_conversation(("T1", "G1", "1.000001"), ALICE.id, "conv-1")

        assert await move_channel(store, "T1", "G1", "C1") is True
        moved = await store.get_binding("T1", "C1")
        assert moved is not None and moved.target.agents == CREW.agents and moved.bound_by == "U1"
        assert await store.get_binding("T1", "G1") is None
        assert await store.get_binding("T1", "G10") is not None
        assert [h.action for h in await store.history("T1", "C1")] == ["connect"]
        assert await store.thread_answered("T1", "C1", "1.000001")  # follow-ups in the bot's threads go on
        assert [p.turn_id for p in await store.unfinished_turns("T1", "C1")] == [waiting]
        assert [p.turn_id for p in await store.unfinished_turns("T1", "G1")] == [running], "a running turn ends there"
        assert await store.conversation(("T1", "C1", "1.000001"), ALICE.id) == "conv-1"
        assert await _answer(store, 9, thread_scope("C1", "1.000001"), BOB, "bob") == ["alice in the thread"]
        assert await _answer(store, 9, "C1", BOB, "bob") == ["alice in the channel"]  # from bob's cursor on
        assert await _answer(store, 9, thread_scope("G10", "1.000001"), BOB, "bob") == ["alice elsewhere"]

    run(database_url, body)


def test_what_a_turn_running_through_the_move_wrote_follows_the_channel_once_it_ended(database_url: str) -> None:
    async def body(store: Store) -> None:
        await store.put_binding(Binding("T1", "G1", CREW))
        running = await store.accept_turn(Turn("T1", "G1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        assert running
        await store.take_turn(running)
        # the relay keeps the running turn's thread back under the new id until it has ended
        assert await move_channel_running(store, "T1", "G1", "C1") == frozenset({"1.000001"})
        await _answer(store, running, "G1", ALICE, "alice")
        await _answer(store, running, "G1", BOB, "bob, after the move")
        await store.finish_turn(running, "done")
        await move_after_turn(store, "T1", "G1", "C1")
        assert await store.thread_answered("T1", "C1", "1.000001")
        assert await _answer(store, 9, "C1", ALICE, "alice again") == ["bob, after the move"]

    run(database_url, body)


def test_a_binding_already_made_under_the_new_id_is_kept(database_url: str) -> None:
    async def body(store: Store) -> None:
        await store.put_binding(Binding("T1", "G1", CREW))
        await store.put_binding(Binding("T1", "C1", Target(kind="group", agents=(BOB,), group_id="group-2")))
        assert await move_channel(store, "T1", "G1", "C1") is False
        kept = await store.get_binding("T1", "C1")
        assert kept is not None and kept.target.agents == (BOB,)
        assert await move_channel(store, "T1", "G9", "C9") is False, "nothing stored under it: nothing moved"

    run(database_url, body)


def test_a_deleted_message_withdraws_its_turn_only_while_it_waits(database_url: str) -> None:
    async def body(store: Store) -> None:
        a = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        b = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        assert a and b
        await store.take_turn(a)
        assert await withdraw_turn(store, "T1", "C1", "1.000001", "deleted") == "past", "a started turn runs on"
        assert await withdraw_turn(store, "T2", "C1", "1.000002", "deleted") is None, "another workspace's message"
        assert await withdraw_turn(store, "T1", "C1", "1.000002", "deleted") == (b, "1.000002")
        assert await withdraw_turn(store, "T1", "C1", "1.000002", "deleted") == "past", "withdrawn once"
        assert await store.take_turn(b) is None
        assert [p.turn_id for p in await store.unfinished_turns()] == [a]

    run(database_url, body)


def test_an_edit_takes_files_out_of_a_waiting_turn_and_never_adds_one(database_url: str) -> None:
    """revBZ: an edit set the waiting turn's words only, and the files taken out of the message were still fetched
    and sent. The stored files whose ids remain are kept, as stored and in order; an edit that does not say (None)
    keeps them all; a started turn keeps its own (the agents have them)."""
    a_png = SharedFile("F1", "a.png", "image/png", "png", 68, "https://acme.slack.com/files/a", "https://files/a")
    b_txt, c_pdf = SharedFile("F2", "b.txt\x00", "text/plain"), SharedFile("F3", "c.pdf", "application/pdf")
    files = (a_png, b_txt, c_pdf)

    async def body(store: Store) -> None:
        waits = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1", files=files), "o1")
        runs = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "b", "Ev2", files=files), "o2")
        assert waits and runs
        assert await store.take_turn(runs)
        assert await edit_turn(store, "T1", "C1", "1.000001", "a2", None) == (waits, "1.000001")
        assert await edit_turn(store, "T1", "C1", "1.000001", "a3", ("F3", "F9", "F1")) == (waits, "1.000001")
        assert await edit_turn(store, "T1", "C1", "1.000002", "b2", ("F2",)) == "past", "it runs with its files"
        taken = await store.take_turn(waits)
        assert taken is not None and taken.words == "a3"
        assert taken.files == (a_png, c_pdf), "the files left, in their order, with their stored details"
        again = await store.take_turn(runs)
        assert again is not None and again.files[0] == a_png and len(again.files) == 3

    run(database_url, body)


def test_an_edit_down_to_no_files_leaves_the_words_alone(database_url: str) -> None:
    async def body(store: Store) -> None:
        shared = (SharedFile("F1", "a.png", "image/png"),)
        turn_id = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1", files=shared), "o")
        assert turn_id and await edit_turn(store, "T1", "C1", "1.000001", "a", ()) == (turn_id, "1.000001")
        taken = await store.take_turn(turn_id)
        assert taken is not None and taken.files == () and taken.words == "a"

    run(database_url, body)


def test_an_edit_to_no_words_keeps_a_turn_with_files_and_takes_back_one_without(database_url: str) -> None:
    """revDP: an edit to no words that does not say which files the message has (no `files` key) leaves the files,
    and the turn answers them alone; a turn left with no words and no files is "emptied" (the relay takes it back)
    and is not changed."""

    async def body(store: Store) -> None:
        shared = (SharedFile("F1", "chart.png", "image/png"),)
        chart = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "what is this", "Ev1",
                                             files=shared), "o1")
        plain = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "hello", "Ev2"), "o2")
        assert chart and plain
        assert await edit_turn(store, "T1", "C1", "1.000001", "", None) == (chart, "1.000001")
        assert await edit_turn(store, "T1", "C1", "1.000002", "", None) == "emptied"
        assert await edit_turn(store, "T1", "C1", "1.000001", "", ("F9",)) == "emptied", "its file taken out too"
        assert await edit_turn(store, "T1", "C1", "1.000003", "", None) is None, "no such turn waits"
        taken = await store.take_turn(chart)
        assert taken is not None and taken.words == "" and taken.files == shared
        assert await words_taken(store, plain) == "hello", "left as it was"

    run(database_url, body)


def test_an_edited_message_gives_its_turn_new_words_only_while_it_waits(database_url: str) -> None:
    async def body(store: Store) -> None:
        a = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        b = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        assert a and b
        await store.take_turn(a)
        assert await edit_turn(store, "T1", "C1", "1.000001", "a2") == "past", "a started turn answers what it asked"
        assert await edit_turn(store, "T1", "C1", "1.000002", "b2") == (b, "1.000002")
        assert await edit_turn(store, "T2", "C1", "1.000002", "b3") is None, "another workspace's message"
        assert [p.turn.text for p in await store.unfinished_turns()] == ["a", "b2"]
        assert await words_taken(store, b) == "b2", "taken with the words it has now"
        assert await words_taken(store, a) == "a", "a's had started"
        assert await edit_turn(store, "T1", "C1", "1.000002", "b3") == "past", "b's has started now"
        await store.finish_turn(b, "done")
        await store.stop_turns("T1", "C1", None, "U9")
        assert await store.take_turn(b) is None and await store.take_turn(a) is None, "ended, and stopping"

    run(database_url, body)


def test_an_edit_older_than_the_one_a_waiting_turn_took_changes_nothing(database_url: str) -> None:
    """Slack promises no order: the first edit's event may come after the second's, and must not bring back the
    words the person replaced (its files either). An edit of no known time is applied, as before."""

    async def body(store: Store) -> None:
        turn = Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1", files=(SharedFile("F1", "a.png"),))
        waits = await store.accept_turn(turn, "o1")
        assert waits
        assert await edit_turn(store, "T1", "C1", "1.000001", "a3", None, "1764064840.000000") == (waits, "1.000001")
        assert await edit_turn(store, "T1", "C1", "1.000001", "a2", (), "1764064830.000000") == "older"
        assert await edit_turn(store, "T1", "C1", "1.000001", "a3", None, "1764064840.000000") == "same", "its twin"
        assert await edit_turn(store, "T1", "C1", "1.000001", "", (), "1764064830.5") == "older", "nor takes it back"
        taken = await store.take_turn(waits)
        assert taken is not None and taken.words == "a3" and [f.id for f in taken.files] == ["F1"]

    run(database_url, body)


def test_an_edit_older_than_the_one_a_waiting_turn_took_does_not_take_it_back(database_url: str) -> None:
    """An edit that would withdraw the turn (to stop, away from the bot, down to nothing), delivered after a newer
    edit the turn took, changes nothing (read and written in one transaction); a newer one, or one of no known
    time, takes it back."""

    async def body(store: Store) -> None:
        waits = await store.accept_turn(Turn("T1", "C1", "1.000001", "1.000001", "U1", "a", "Ev1"), "o1")
        assert waits
        assert await edit_turn(store, "T1", "C1", "1.000001", "a3", None, "1764064840.000000") == (waits, "1.000001")
        for why in ("stop", "addressed", "unmentioned", "emptied"):
            assert await withdraw_turn(store, "T1", "C1", "1.000001", why, "1764064830.000000") == "older", why
        assert await withdraw_turn(store, "T1", "C1", "1.000001", "stop", "1764064840.000000") == "same", "its twin"
        assert await withdraw_turn(store, "T1", "C1", "1.000001", "stop", "1764064850.000000") == (waits, "1.000001")
        other = await store.accept_turn(Turn("T1", "C1", "1.000002", "1.000002", "U1", "b", "Ev2"), "o2")
        assert other and await edit_turn(store, "T1", "C1", "1.000002", "b2", None, "1764064840.000000")
        assert await withdraw_turn(store, "T1", "C1", "1.000002", "deleted") == (other, "1.000002"), "a deletion"
        assert [p.turn_id for p in await store.unfinished_turns()] == []

    run(database_url, body)


def test_a_waiting_mention_edited_while_its_turn_waits_for_a_slot_is_answered_as_edited(tmp_path: Path) -> None:
    """Every turn slot (MAX_CONCURRENT_TURNS) was taken: another channel's mention, its binding's next turn, was
    read from the store and waited for one. The person fixed a typo meanwhile; the edit was recorded (logged
    'turn edited before it ran') but the turn, once a slot came, asked the agents the words it was read with."""
    from tests.unit.test_relay import Worker, relaying, until

    class Taking(Worker):
        """Takes each turn as TurnWorker._take does, and answers the words the take returns."""

        async def run(self, job: Job) -> str:
            words = await words_taken(self.store, job.turn_id)
            assert words is not None
            self.jobs.append(replace(job, turn=replace(job.turn, text=words)))
            if len(self.jobs) == 1:
                await self.go_on.wait()
            await self.store.finish_turn(job.turn_id, "done")
            return "done"

    async def main() -> list[str]:
        async with relaying(tmp_path / "b.db", Taking, max_concurrent=1) as rig:
            await rig.relay.accept(Turn("T1", "C1", "1.000001", "1.000001", "U1", "first", "Ev1"))
            await until(lambda: bool(rig.worker.jobs))  # it holds the only slot
            await rig.relay.accept(Turn("T1", "C2", "2.000001", "2.000001", "U2", "teh question", "Ev2"))
            await asyncio.sleep(0.2)  # C2's worker has read its turn and waits for the slot
            await rig.relay.edit("T1", "C2", "2.000001", "the question")
            rig.worker.go_on.set()
            await until(lambda: len(rig.worker.jobs) == 2)
            return rig.worker.texts()

    assert asyncio.run(main()) == ["first", "the question"]


def test_a_mention_edited_as_its_turn_is_taken_is_answered_as_edited(tmp_path: Path) -> None:
    """The edit lands after the turn got its slot and before it is marked running (here: while the real worker
    reads its binding). Before, its words were read as it got its slot, and the agents were asked the words from
    before the edit, which the store no longer held; they are now read in the same write that takes the turn."""
    from bridge.metrics import Metrics
    from tests.unit.test_relay import mention, until
    from tests.unit.test_turn_counts import Racing, Recorder, real_worker, relay_on

    async def main() -> list[str]:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        await store.put_binding(Binding("T1", "C1", Target("agents", (AgentRef("agent-1", "finn"),))))
        racing = Racing(store)
        worker = real_worker(racing, Recorder())
        worker._settings.turn_deadline_seconds = 30  # type: ignore[misc]  # a SimpleNamespace here
        worker._settings.slack_done_reaction = worker._settings.slack_failed_reaction = ""  # type: ignore[misc]
        asked: list[str] = []

        async def converse(job: Job, *_: object) -> int:
            asked.append(job.turn.text)
            return 0

        worker._converse = converse  # type: ignore[method-assign]
        racing.meanwhile = lambda: edit_turn(store, "T1", "C1", "1.000001", "the question")
        relay = await relay_on(racing, worker, Metrics(), 8)  # type: ignore[arg-type]
        try:
            await relay.accept(mention(1, "teh question"))
            await until(lambda: bool(asked))
            return asked
        finally:
            await relay.stop(1.0)
            await store.close()

    assert asyncio.run(main()) == ["the question"]
