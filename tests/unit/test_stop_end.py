"""The end of a stop whose turn's process died, in the process taking the binding over (bridge/stop_end.py): the
runs the dead process had in flight cancelled (under the agent's send lock, so that another channel's send is
never cancelled), a tool call still pending on Letta denied once, the turn's approval cards closed, the stop said
once, the session (or the fallback signs) taken back, the turn marked stopped; the agents are never asked. Slack
and Letta are doubles (or the fake Letta 0.16.8); the store is a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.approval_desk import ApprovalDesk
from bridge.domain import AgentRef, Binding, Target
from bridge.letta import recovery
from bridge.letta.client import DEFAULT_CONVERSATION, LettaClient
from bridge.letta.exchange import Asked as Question
from bridge.letta.exchange import Said, exchange
from bridge.letta.wire import user_message
from bridge.stop_end import StopEnd
from bridge.stopping import TurnStops
from bridge.store import Store, open_store
from bridge.store.approvals import Asked
from bridge.store.locks import AckFirst
from bridge.turn_flush import TurnFlush
from bridge.turns import Job, TurnWorker
from tests.fakes.letta import FakeLetta
from tests.unit.test_stop_cancel import ALICE, BOB, TURN, Letta


class Recorder:
    """Any async call, recorded with its keyword arguments; `set` (a session's status) answers `session`."""

    def __init__(self, session: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.session = session
        self.client = SimpleNamespace(chat_update=self.chat_update)

    async def chat_update(self, **kwargs: Any) -> None:
        self.calls.append(("chat_update", kwargs["ts"]))

    def shown_name(self, agent_name: str) -> str:
        """A poster's agent as its replies show it: here its Letta name."""
        return agent_name

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, *args, *sorted(kwargs.items())))
            return self.session if name == "set" else "9.000001" if name == "post" else None

        return call


class Denied(Letta):
    """The cancel routes, and the agent route's stream, which records what it is sent and answers nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.no_stream_route: set[str] = set()
        self.sent: list[tuple[str, Any]] = []

    async def stream_agent(self, agent_id: str, message: Any, **_: Any) -> Any:
        self.sent.append((agent_id, message))
        return
        yield


async def stopping_turn(store: Store) -> int:
    """A turn the dead process was running: alice's send in flight, a tool call of bob's waiting on its card."""
    await store.put_binding(Binding("T1", "C1", Target("agents", (ALICE, BOB))))
    turn_id = await store.accept_turn(TURN, "otid-1")
    assert turn_id is not None and await store.take_turn(turn_id)
    await store.step_sending(turn_id, ALICE.id)
    desk_store = ApprovalDesk(store, SimpleNamespace()).store  # type: ignore[arg-type]
    [row] = await desk_store.ask([Asked(turn_id, BOB.id, "call-1", "T1", "C1", "1.000001", BOB.id, "bob", None,
                                       "req-1", "shout", "{}", "U1")])
    await desk_store.card_posted(row.id, "5.000001")
    assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
    return turn_id


@pytest.mark.parametrize("session", [True, False], ids=["session", "fallbacks"])
def test_the_process_taking_over_finishes_the_stop_without_asking_the_agents(tmp_path: Path, session: bool) -> None:
    async def main() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'b.db'}")
        await store.open()
        try:
            turn_id = await stopping_turn(store)
            pending = await store.next_turn("T1", "C1")
            assert pending is not None and pending.stopped_by == "U9"
            settings = SimpleNamespace(
                slack_working_reaction="eyes", slack_stopped_reaction="black_square_for_stop",
                approval_timeout_seconds=60, slack_approve_by="asker", slack_approve_users=(), slack_agents={},
            )
            poster, sessions, letta = Recorder(), Recorder(session), Denied()
            worker = object.__new__(TurnWorker)  # what a turn's run uses before it would ask the agents
            worker._settings, worker._store, worker._poster = settings, store, poster  # type: ignore[assignment]
            worker.sessions, worker._fallback = sessions, None  # type: ignore[assignment]
            worker.ack_first, worker._outboxes, worker._journaled = AckFirst(), {}, {}
            worker.desk = ApprovalDesk(store, settings)  # type: ignore[arg-type]
            worker.stops = TurnStops(store, letta, 0)  # type: ignore[arg-type]
            worker._posting = TurnFlush(settings, poster, worker.stops, worker.ack_first)  # type: ignore[arg-type]
            worker.stop_end = StopEnd(store, worker.stops, poster, sessions, worker.desk, settings)  # type: ignore[arg-type]
            asked: list[str] = []

            async def converse(*_: Any) -> int:
                asked.append("the agents were asked")
                return 0

            worker._converse = converse  # type: ignore[method-assign]
            job = Job(pending.turn, turn_id, pending.otid, resumed=True, stopped_by=pending.stopped_by)
            assert await worker.run(job) == "stopped"
            assert asked == [] and letta.cancels == [ALICE.id]
            denial = {"type": "approval", "approvals": [{"type": "approval", "approve": False, "tool_call_id": "call-1",
                                                         "reason": "the turn was stopped"}]}
            assert letta.sent == [(BOB.id, denial)]  # bob's call, still pending on Letta
            posts = [c for c in poster.calls if c[0] == "post"]
            assert len(posts) == 1 and posts[0][3].text == "Stopped by <@U9>." and ("check_first", True) in posts[0]
            assert ("chat_update", "5.000001") in poster.calls  # bob's card: the turn was stopped
            [card] = await worker.desk.store.for_step(turn_id, BOB.id)
            assert card.outcome == "stopped"
            assert ("set", "C1", "1.000001", "active", ("attempts", 3)) in sessions.calls
            signs = [c[:4] for c in poster.calls if c[0] in ("react", "unreact", "status")]
            if session:
                assert signs == []
            else:
                assert signs == [("unreact", "C1", "1.000001", "eyes"), ("status", "C1", "1.000001", ""),
                                 ("react", "C1", "1.000001", "black_square_for_stop")]
            assert await store.count_unfinished() == 0 and await store.turn_stopped_by(turn_id) == "U9"
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize("conversation", [False, True], ids=["agent", "conversation"])
def test_the_process_ending_the_stop_denies_the_call_still_pending_on_letta_once(
    tmp_path: Path, conversation: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn killed while its card waited, then stopped: 0.16.8 keeps the request pending whatever is cancelled,
    and refused every later message to the agent (that thread) with 409 PENDING_APPROVAL. Before, the process
    ending the stop closed the card and sent Letta nothing. Now it denies the call, once (a second end of the same
    stop, after a crash, sends nothing), and never where a decision may already have been sent: history still shows
    that request waiting after the wait (recovery.PATIENCE), so the thread is told it may still wait."""
    monkeypatch.setattr(recovery, "PATIENCE", 0.3)

    async def main(
        letta: FakeLetta, finn: str, sent_before: bool
    ) -> tuple[list[dict[str, Any]], Any, list[Any], list[Any]]:
        store = open_store(f"sqlite:///{tmp_path / f'{sent_before}.db'}")
        await store.open()
        client = LettaClient(letta.base_url)
        try:
            route = DEFAULT_CONVERSATION if conversation else None
            spoken = [s async for s in exchange(client, user_message("use shout", "otid-x", "maria"), "finn", True,
                                                agent_id=finn, conversation=route)]
            [question] = [s for s in spoken if isinstance(s, Question)]
            agent = Target("agents", (AgentRef(finn, "finn"),))
            await store.put_binding(Binding("T1", "C1", agent))
            turn_id = await store.accept_turn(TURN, "otid-1")
            assert turn_id is not None and await store.take_turn(turn_id)
            settings = SimpleNamespace(
                slack_working_reaction="eyes", slack_stopped_reaction="black_square_for_stop", slack_agents={}
            )
            desk = ApprovalDesk(store, settings)  # type: ignore[arg-type]
            rows = await desk.store.ask([Asked(turn_id, finn, c.tool_call_id, "T1", "C1", "1.000001", finn, "finn",
                                               route, question.request_id, c.name, c.arguments, "U1")
                                         for c in question.calls])
            for row in rows:
                await desk.store.card_posted(row.id, "5.000001")
                if sent_before:  # a person decided and it was being sent when the process died
                    await desk.store.decide(row.id, "U1", True, "")
                    await desk.store.sending(row.id)
            assert await store.stop_turns("T1", "C1", "1.000001", "U9") == [(turn_id, False)]
            poster, sessions = Recorder(), Recorder(True)
            end = StopEnd(store, TurnStops(store, client, 0), poster, sessions, desk, settings)  # type: ignore[arg-type]
            await end.finish(TURN, turn_id, "U9", agent)
            await end.finish(TURN, turn_id, "U9", agent)  # its end died after the denial: ended again
            [card] = await desk.store.for_step(turn_id, finn)
            decisions = letta.approval_decisions()
            later = [s async for s in exchange(client, user_message("next", "otid-y", "maria"), "finn", True,
                                               agent_id=finn, conversation=route)]
            return decisions, card, later, poster.calls
        finally:
            await client.aclose()
            await store.close()

    for sent_before in (False, True):
        with FakeLetta(version="0.16.8") as letta:
            finn = letta.add_agent("finn")
            letta.ask_approval(finn, ("shout", '{"message": "hi"}'))
            decisions, card, later, posted = asyncio.run(main(letta, finn, sent_before))
        assert card.outcome == "stopped"
        told = [c for c in posted if c[0] == "post" and "could not tell" in c[3].text]
        if sent_before:
            assert decisions == [], "a decision that may have been sent was followed by a denial"
            assert len(told) == 2 and card.asked.tool_call_id in told[0][3].text, posted  # once per end
            assert "(Letta was still working on the decision after" in told[0][3].text, posted  # it still waits
            continue
        assert told == [], posted
        assert [[(a["approve"], a.get("reason")) for a in d["approvals"]] for d in decisions] == [
            [(False, "the turn was stopped")]
        ]
        assert card.sent_at is not None  # recorded before it went: never sent twice
        assert [s.text for s in later if isinstance(s, Said)] == ["finn says hi"]  # the agent takes messages again
