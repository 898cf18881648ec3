"""What a resumed REST send does when the server no longer says which run carried it: never asked twice."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    ApprovalRequest,
    Decision,
    Target,
    TurnEvent,
    TurnInput,
)
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind
from tests.approving import ApproveAll
from tests.fakes import letta_shapes as S
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal, NoTranscript


async def play(client: LettaClient, target: Target, journal: MemoryJournal) -> list[TurnEvent]:
    runner = BridgeRunner(client, patience=1.0)
    return [e async for e in runner.run(target, TurnInput("hi all", OTID, "maria"), NoTranscript(), journal)]


def test_a_resumed_send_whose_otid_letta_no_longer_maps_to_a_run_is_looked_up_not_sent_again() -> None:
    """0.16.8 keeps an otid's run in Redis for 3 hours (OTID_RUN_TTL_SECONDS), then answers the re-attach 404 'No
    run found for otid=… The run may have expired or never existed.' A turn resumed after that (the bridge was down
    for the afternoon) took the 404 for 'never reached Letta' and asked the agent a second time."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        journal = MemoryJournal()

        async def go() -> tuple[list[TurnEvent], list[TurnEvent]]:
            client = LettaClient(letta.base_url)  # one client: it has found out the server keeps runs resumable
            try:
                first = await play(client, target, journal)
                # The process died before it recorded the answer: the step is still `sending` when the turn resumes.
                since = datetime.now(UTC) - timedelta(minutes=1)
                steps = journal.steps.items()
                journal.steps = {k: dataclasses.replace(r, state="sending", since=since) for k, r in steps}
                expired = S.body("0.16.8", "redis-conversations-stream-resume-unknown-otid")
                letta.fail_next("POST", r"/v1/conversations/default/stream", 404, body=expired)
                return first, await play(client, target, journal)
            finally:
                await client.aclose()

        first, again = asyncio.run(go())
        assert [e.text for e in first if isinstance(e, AgentReply)] == ["alice says hi"]
        assert len(letta.sends()) == 1, "the agent was asked a second time"
        assert [e.text for e in again if isinstance(e, AgentReply)] == ["alice says hi"]


def test_a_stream_that_goes_quiet_after_its_first_event_loses_no_reply() -> None:
    """Letta (without Redis) runs a streamed send to its end when the client goes away: the run is shielded from
    the disconnect, and the reply is stored. The bridge gave up on the quiet stream, said the agent did not
    answer in time, and never showed the reply the agent went on to give: the person asks again (a second turn)."""
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        letta.set_delay(alice, 1.0)  # after the first ping, nothing for a second: longer than the read timeout
        target = Target("agents", (AgentRef(alice, "alice"),))

        async def go() -> list[TurnEvent]:
            client = LettaClient(letta.base_url, read_timeout=0.3)
            try:
                return await play(client, target, MemoryJournal())
            finally:
                await client.aclose()

        events = asyncio.run(go())
        assert len(letta.sends()) == 1
        assert [e.text for e in events if isinstance(e, AgentReply)] == ["alice says hi"], events


def test_a_gateways_502_to_the_resume_probe_does_not_make_every_later_send_ask_for_a_background_run() -> None:
    """Whether the server keeps runs resumable is asked once (its resume route: 503 without Redis). A 502 from a
    proxy in front of Letta (restarting) was taken for 'resumable' and kept: on a server without Redis, every later
    send asked for a background run and was refused 503 until the bridge restarted."""
    with FakeLetta(version="0.16.8") as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        letta.fail_next("POST", r"/v1/conversations/default/stream", 502, body={"detail": "Bad Gateway"})

        async def go() -> list[list[TurnEvent]]:
            client = LettaClient(letta.base_url)
            try:
                return [await play(client, target, MemoryJournal()) for _ in range(2)]
            finally:
                await client.aclose()

        first, second = asyncio.run(go())
        assert [e.text for e in second if isinstance(e, AgentReply)] == ["alice says hi"], second
        assert len(letta.sends()) == len([e for e in first + second if isinstance(e, AgentReply)])


@pytest.mark.parametrize("before", [True, False], ids=["redis-lost", "redis-gained"])
def test_a_send_resumed_after_letta_gained_or_lost_redis_is_found_not_made_again(before: bool) -> None:
    """The otid of an agent's first send depends on whether the server keeps background runs (Redis). A process
    that died mid-send and one that resumed the turn after Letta was restarted with (or without) Redis disagreed:
    the lookup used the other otid, found nothing in history, and the agent was asked a second time."""
    with FakeLetta(version="0.16.8", redis=before) as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        journal = MemoryJournal()

        async def go() -> tuple[list[TurnEvent], list[TurnEvent]]:
            dead, resuming = LettaClient(letta.base_url), LettaClient(letta.base_url)
            try:
                first = await play(dead, target, journal)
                since = datetime.now(UTC) - timedelta(minutes=1)
                steps = journal.steps.items()
                journal.steps = {k: dataclasses.replace(r, state="sending", since=since) for k, r in steps}
                letta.redis = not before  # Letta restarted with (or without) Redis before the turn was resumed
                return first, await play(resuming, target, journal)
            finally:
                await dead.aclose()
                await resuming.aclose()

        first, again = asyncio.run(go())
        assert [e.text for e in first if isinstance(e, AgentReply)] == ["alice says hi"]
        assert len(letta.sends()) == 1, "the agent was asked a second time"
        assert [e.text for e in again if isinstance(e, AgentReply)] == ["alice says hi"]


class Cards(ApproveAll):
    """The thread's approval cards: each request asked about is kept, and approved at once; the agent's answer to
    the decision then comes at once."""

    def __init__(self, letta: FakeLetta, agent_id: str) -> None:
        super().__init__()
        self._letta, self._agent = letta, agent_id

    async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]:
        self._letta.set_delay(self._agent, 0.0)
        return await super().decide(request)


def test_an_approval_request_whose_stream_was_lost_gets_its_card_and_the_agent_is_not_left_blocked() -> None:
    """The stream dropped before the agent's `approval_request_message` came; the run went on and asked for approval
    on Letta. The bridge read history for a reply, found none, and said the agent did not answer: no card was ever
    posted, and every later message to the agent was refused 409 PENDING_APPROVAL."""
    with FakeLetta(version="0.16.8") as letta:
        finn = letta.add_agent("finn")
        letta.ask_approval(finn, ("shout", '{"message": "hello"}'))
        letta.set_delay(finn, 1.0)  # quiet after the first ping for longer than the read timeout
        target = Target("agents", (AgentRef(finn, "finn"),))
        cards = Cards(letta, finn)

        async def go() -> list[TurnEvent]:
            client = LettaClient(letta.base_url, read_timeout=0.3)
            try:
                runner = BridgeRunner(client, patience=1.0)
                turn = TurnInput("please shout", OTID, "maria", approvals=cards)
                return [e async for e in runner.run(target, turn, NoTranscript(), MemoryJournal())]
            finally:
                await client.aclose()

        events = asyncio.run(go())
        assert [c.name for r in cards.asked for c in r.calls] == ["shout"], "no card for the request Letta waits on"
        assert [[a["approve"] for a in d["approvals"]] for d in letta.approval_decisions()] == [[True]]
        assert len([i for i in letta.inputs if i.text == "please shout"]) == 1
        assert [e.text for e in events if isinstance(e, AgentReply)] == ["finn says hi"], events


class Died(Exception):
    """The process ending while the card is being asked (what a kill leaves: the send journaled as sending)."""


async def _died_at_the_card_then_resumed(letta: FakeLetta, agent: str, target: Target, cards: Cards) -> list[TurnEvent]:
    """A turn whose process died as its card was being asked, then the same turn resumed with `cards` answering:
    the resumed run's events."""

    class Dying(Cards):
        async def decide(self, request: ApprovalRequest) -> tuple[Decision, ...]:
            raise Died

    journal = MemoryJournal()
    client = LettaClient(letta.base_url)
    try:
        runner = BridgeRunner(client, patience=1.0)
        turn = TurnInput("please shout", OTID, "maria", approvals=Dying(letta, agent))
        with pytest.raises(Died):
            [e async for e in runner.run(target, turn, NoTranscript(), journal)]
        assert [r.state for r in journal.steps.values()] == ["sending"]
        turn = dataclasses.replace(turn, approvals=cards)
        return [e async for e in runner.run(target, turn, NoTranscript(), journal)]
    finally:
        await client.aclose()


def test_a_turn_resumed_after_its_process_died_before_the_card_asks_about_the_request_found_in_history() -> None:
    """The process died after Letta asked for approval but before the card was recorded; the resumed turn found the
    send in history with no reply, ended the step empty, and left the agent refusing every later message."""
    with FakeLetta(version="0.16.8") as letta:
        finn = letta.add_agent("finn")
        letta.ask_approval(finn, ("shout", '{"message": "hello"}'))
        target = Target("agents", (AgentRef(finn, "finn"),))
        cards = Cards(letta, finn)
        events = asyncio.run(_died_at_the_card_then_resumed(letta, finn, target, cards))
        assert [c.name for r in cards.asked for c in r.calls] == ["shout"], "no card for the request Letta waits on"
        assert [[a["approve"] for a in d["approvals"]] for d in letta.approval_decisions()] == [[True]]
        assert len([i for i in letta.inputs if i.text == "please shout"]) == 1
        assert [e.text for e in events if isinstance(e, AgentReply)] == ["finn says hi"], events


def test_a_turn_resumed_with_redis_after_its_process_died_before_the_card_asks_about_the_re_attached_request() -> None:
    """With Redis the resumed turn re-attaches to the send's run by its otid, and the run's stream carries the
    approval request again (redis-approval-stream-resume-by-otid). The bridge kept only the words it re-read: no card,
    the turn ended without the agent's answer, and the agent refused every later message (409 PENDING_APPROVAL)."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        finn = letta.add_agent("finn")
        letta.ask_approval(finn, ("shout", '{"message": "hello"}'), said="Let me do that.")
        target = Target("agents", (AgentRef(finn, "finn"),))
        cards = Cards(letta, finn)
        events = asyncio.run(_died_at_the_card_then_resumed(letta, finn, target, cards))
        attached = [r for r in letta.requests if r.path.endswith("/stream") and (r.body or {}).get("otid")]
        assert [r.status for r in attached] == [200], "the resumed turn did not re-attach to the run"
        assert [c.name for r in cards.asked for c in r.calls] == ["shout"], "no card for the request Letta waits on"
        assert [[a["approve"] for a in d["approvals"]] for d in letta.approval_decisions()] == [[True]]
        assert len([i for i in letta.inputs if i.text == "please shout"]) == 1
        assert [e.text for e in events if isinstance(e, AgentReply)] == ["Let me do that.\n\nfinn says hi"], events


@pytest.mark.parametrize(("status", "kind"), [(429, Kind.RATE_LIMITED), (402, Kind.QUOTA), (401, Kind.UNAUTHORIZED)])
def test_a_refusal_of_the_resume_probe_is_said_as_what_it_is(status: int, kind: Kind) -> None:
    """The first send after a start asks whether the server keeps background runs (its resume route). Letta Cloud
    rate-limiting that question (429, with its Retry-After) was said as "Letta failed while alice was answering
    (HTTP 429: the resume route did not answer) … check the Letta server's logs"."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        target = Target("agents", (AgentRef(alice, "alice"),))
        letta.fail_next("POST", r"/v1/conversations/default/stream", status, body={"detail": "slow down"},
                        headers={"Retry-After": "120"})

        async def go() -> list[TurnEvent]:
            client = LettaClient(letta.base_url)
            try:
                return await play(client, target, MemoryJournal())
            finally:
                await client.aclose()

        [failure] = asyncio.run(go())
        assert isinstance(failure, AgentFailure) and failure.kind == kind, failure
        assert "resume route" not in failure.message, failure.message
        if status == 429:
            assert "about 2 minutes" in failure.message, failure.message
        assert letta.sends() == []
