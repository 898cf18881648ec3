"""bridge/letta/patterns.py as a team running Letta groups sees it: a dynamic manager's choice never shown in the
thread, a managed group whose manager could not be looked up never played as if it had none, a supervisor's manager
not asked past a failure of the server itself."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.domain import (
    AgentFailure,
    AgentRef,
    AgentReply,
    Image,
    Journal,
    Target,
    ToolProgress,
    Transcript,
    TurnEvent,
    TurnInput,
)
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.errors import SERVER_WIDE, Kind, LettaError
from bridge.letta.patterns import Step, in_order, supervise
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns import OTID, MemoryJournal


class SeenDrafts:
    """Every draft a runner grows, by step."""

    def __init__(self) -> None:
        self.grown: list[tuple[str, str, str]] = []

    async def grow(self, step: str, index: int, agent_name: str, text: str) -> None:
        self.grown.append((step, agent_name, text))

    async def tool(self, step: str, index: int, agent_name: str, progress: ToolProgress) -> None:
        self.grown.append((step, agent_name, progress.name))


class SharedTranscript(MemoryJournal):
    """A journal that also keeps the group's transcript as the store does: each agent's replies in order, and
    how far each agent has seen."""

    def __init__(self) -> None:
        super().__init__()
        self.said: list[AgentReply] = []
        self.cursors: dict[str, int] = {}

    async def unseen(self, agent_id: str) -> tuple[list[AgentReply], int | None]:
        since = self.cursors.get(agent_id, 0)
        return [r for r in self.said[since:] if r.agent_id != agent_id], len(self.said)

    async def answered(
        self, key: str, replies: list[AgentReply], failure: AgentFailure | None = None, seen_upto: int | None = None
    ) -> None:
        await super().answered(key, replies, failure, seen_upto)
        if seen_upto is not None:
            self.said.extend(replies)
            self.cursors[key.partition("#")[0]] = max(seen_upto, self.cursors.get(key.partition("#")[0], 0))


def run(letta: FakeLetta, target: Target, drafts: SeenDrafts | None = None, tokens: bool = False) -> list[TurnEvent]:
    async def go() -> list[TurnEvent]:
        client = LettaClient(letta.base_url)
        try:
            runner = BridgeRunner(client, patience=1.0, tokens=tokens)
            turn = TurnInput("hi all", OTID, "maria", drafts=drafts)
            journal = SharedTranscript()
            return [e async for e in runner.run(target, turn, journal, journal)]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_dynamic_managers_choice_is_never_drafted_in_the_thread(letta: FakeLetta) -> None:
    alice, boss = letta.add_agent("alice"), letta.add_agent("boss")
    letta.set_reply(boss, lambda text: "DONE!" if '"agent": "alice"' in text else "alice")
    target = Target("agents", (AgentRef(alice, "alice"),), manager_type="dynamic", manager=AgentRef(boss, "boss"),
                    max_turns=3, termination_token="DONE!")
    drafts = SeenDrafts()
    events = run(letta, target, drafts, tokens=True)
    assert [(e.agent_name, e.text) for e in events if isinstance(e, AgentReply)] == [("alice", "alice says hi")]
    assert {name for _, name, _ in drafts.grown} == {"alice"}, f"the manager's choice was shown: {drafts.grown}"


def test_a_managed_group_whose_record_cannot_be_read_asks_nobody_in_its_place(letta: FakeLetta) -> None:
    """Before: the failed lookup left the target without its manager, and the turn was played in order, asking
    the sleeptime agent (or a supervisor's workers without their manager, a dynamic group's members in turn)."""
    cases = (("sleeptime", "sleeper"), ("supervisor", "worker"), ("dynamic", "member"))
    for manager_type, name in cases:
        member, boss = letta.add_agent(name), letta.add_agent("boss")
        group = letta.add_group([member], manager_type=manager_type, manager_agent_id=boss)
        letta.fail_next("GET", rf"/v1/groups/{group}/?", 500)
        target = Target("group", (AgentRef(member, name),), group, manager_type)
        try:
            events = run(letta, target)
        except LettaError as error:
            events = [AgentFailure(None, error.explain("the group"), error.kind)]
        assert [i.agent_name for i in letta.inputs if i.agent_id == member] == [], f"{manager_type}: {name} asked"
        assert [e for e in events if isinstance(e, AgentReply)] == []
        assert any(isinstance(e, AgentFailure) for e in events), f"{manager_type}: the thread is told nothing"


def test_a_managed_group_whose_record_names_no_manager_asks_nobody(letta: FakeLetta) -> None:
    worker = letta.add_agent("worker")
    group = letta.add_group([worker], manager_type="supervisor")
    events = run(letta, Target("group", (AgentRef(worker, "worker"),), group, "supervisor"))
    assert letta.inputs == []
    [failure] = events
    assert isinstance(failure, AgentFailure) and "no manager agent" in failure.message


def test_a_dynamic_manager_never_gives_the_floor_back_to_who_just_spoke(letta: FakeLetta) -> None:
    """Letta's DynamicMultiAgent offers the manager every member but the last speaker; before, the bridge offered
    everyone and took the name said first, so 'bob has answered, alice next' asked bob twice in a row."""
    alice, bob, boss = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("boss")
    handover = "bob has answered; alice should add the numbers"
    letta.set_reply(boss, lambda text: handover if "bob says" in text else "bob")
    target = Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob")), manager_type="dynamic",
                    manager=AgentRef(boss, "boss"), max_turns=2)
    events = run(letta, target)
    assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["bob", "alice"]
    choices = [i.text for i in letta.inputs if i.agent_id == boss]
    assert "Members: alice, bob." in choices[0] and "Members: alice (bob just spoke)." in choices[1]


def test_a_dynamic_managers_choice_by_agent_id_is_understood(letta: FakeLetta) -> None:
    """Letta lists the options by id and labels each member's memory block with it, so a manager may answer
    with an id: before, that was read as naming nobody and the turn ended unanswered."""
    alice, bob, boss = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("boss")
    letta.set_reply(boss, f"Next speaker: {bob}")
    target = Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob")), manager_type="dynamic",
                    manager=AgentRef(boss, "boss"), max_turns=1)
    events = run(letta, target)
    assert [(e.agent_name, e.text) for e in events] == [("bob", "bob says hi")]


def test_an_agents_later_send_in_a_turn_brings_only_what_is_new(letta: FakeLetta) -> None:
    """Letta's round robin and dynamic managers hand an agent asked again only the messages since it last spoke;
    before, the person's message (with its images and thread context) was sent again, as if asked twice."""
    alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
    target = Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob")), manager_type="round_robin",
                    max_turns=3)
    events = run(letta, target)
    assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["alice", "bob", "alice"]
    first, again = [i for i in letta.inputs if i.agent_id == alice]
    assert first.text == "hi all" and first.name == "maria"
    assert again.text == 'Replies in your group since you last spoke:\n{"agent": "bob", "text": "bob says hi"}'
    assert again.name is None


STREAM_ERROR = (
    b'data: {"message_type":"stop_reason","stop_reason":"llm_api_error"}\n\n'
    b'event: error\ndata: {"message_type":"error_message","run_id":"run-1","error_type":"llm_error",'
    b'"message":"An error occurred with the LLM request.","detail":"boom"}\n\ndata: [DONE]\n\n'
)


def test_each_agent_whose_lost_send_is_found_failed_is_named_in_the_thread() -> None:
    """A send whose answer was lost (a 502) is re-attached to its background run (Redis); a run that ended in an
    error was said as 'the agent' with no step of its own, so a second such agent's failure took the first one's
    place in the outbox (`fail::0`) and was never said."""
    letta = FakeLetta(version="0.16.8", redis=True)
    letta.start()
    try:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        letta.fail_next("POST", r"/v1/conversations/default/messages", 502, times=2)
        sse = {"content-type": "text/event-stream; charset=utf-8"}
        letta.fail_next("POST", r"/v1/conversations/default/stream", 200, raw=STREAM_ERROR, headers=sse, times=3)
        events = run(letta, Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob"))))
    finally:
        letta.stop()
    failures = [e for e in events if isinstance(e, AgentFailure)]
    assert [f.agent_name for f in failures] == ["alice", "bob"], failures
    assert len({(f.step, f.index) for f in failures}) == 2, "two failures under one outbox key: one is never said"
    assert all("LLM request" in f.message for f in failures)


def test_after_a_server_wide_failure_only_the_agents_never_asked_are_named() -> None:
    """Round robin past its members: alice's failure meant 'bob, alice were not asked', though alice was."""
    alice, bob = AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob")

    async def ask(agent: AgentRef, key: str) -> list[TurnEvent]:
        return [AgentFailure(agent.name, "unreachable", Kind.UNREACHABLE, agent.id, step=key)]

    async def go() -> list[TurnEvent]:
        return [e async for e in in_order((alice, bob, alice, bob), ask)]

    events = asyncio.run(go())
    assert [e.message for e in events if isinstance(e, AgentFailure)] == [
        "unreachable", "bob was not asked, for the same reason."
    ]


CREDITS_OUT = (
    b'data: {"id":"message-1","message_type":"assistant_message","otid":"o-80","content":"The first half",'
    b'"run_id":"run-1"}\n\ndata: {"message_type":"stop_reason","stop_reason":"insufficient_credits"}\n\n'
    b"data: [DONE]\n\n"
)


def test_credits_running_out_in_a_stream_ends_the_turn_as_a_402_does() -> None:
    """Letta Cloud's credits ran out between two steps of alice's streamed answer: said as a passing failure, it
    went on to bob, whose send failed alike after a first step that may use more of the account."""
    letta = FakeLetta(version="0.16.8", redis=True)
    letta.start()
    try:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        sse = {"content-type": "text/event-stream; charset=utf-8"}
        letta.fail_next("POST", r"/v1/conversations/default/messages", 200, raw=CREDITS_OUT, headers=sse)
        events = run(letta, Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob"))))
    finally:
        letta.stop()
    assert [i.agent_id for i in letta.inputs if i.agent_id == bob] == [], "bob was asked after the credits ran out"
    failures = [e for e in events if isinstance(e, AgentFailure)]
    assert [(f.agent_name, f.kind) for f in failures] == [("alice", Kind.QUOTA), (None, Kind.QUOTA)], failures
    assert failures[1].message == "bob was not asked, for the same reason."
    assert [e.text for e in events if isinstance(e, AgentReply)] == ["The first half"]


def test_a_supervisor_whose_worker_met_a_server_wide_failure_does_not_ask_the_manager(letta: FakeLetta) -> None:
    """docs/patterns.md: a server unreachable or refusing stops the turn. Before: the manager was asked all the
    same after bob's hour-long rate limit, met the same refusal: two failure notes for one cause."""
    alice, bob, boss = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("boss")
    for refused in (bob, boss):  # an hour-long rate limit: bob's send, then the manager's
        letta.fail_next("POST", rf"/v1/agents/{refused}/messages(/stream)?", 429, headers={"retry-after": "3600"})
    target = Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob")), manager_type="supervisor",
                    manager=AgentRef(boss, "boss"))
    events = run(letta, target)
    assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["alice"]
    failures = [e for e in events if isinstance(e, AgentFailure)]
    assert [(f.agent_name, f.kind in SERVER_WIDE) for f in failures] == [("bob", True), (None, True)], failures
    assert failures[1].message == "boss was not asked because of bob's failure."
    assert not [i for i in letta.inputs if i.agent_id == boss], "the manager was asked past a server-wide failure"


def test_a_supervisors_manager_still_answers_when_its_only_worker_fails_on_its_own(letta: FakeLetta) -> None:
    """docs/patterns.md: if one agent fails, the others still answer, the manager too, as Letta's own supervisor
    answers whatever its workers' tool call returned. Before: the thread held alice's failure and nothing else
    (found by review revDF)."""
    alice, boss = letta.add_agent("alice"), letta.add_agent("boss")
    letta.fail_next("POST", rf"/v1/agents/{alice}/messages(/stream)?", 500)
    target = Target("agents", (AgentRef(alice, "alice"),), manager_type="supervisor", manager=AgentRef(boss, "boss"))
    events = run(letta, target)
    assert [f.agent_name for f in events if isinstance(f, AgentFailure)] == ["alice"]
    assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["boss"], events
    (told,) = [i.text for i in letta.inputs if i.agent_id == boss]
    assert told.endswith("\n\nNone of your workers answered this time."), told


def test_a_supervisors_manager_is_asked_when_its_workers_answer_nothing(letta: FakeLetta) -> None:
    """Before: the manager was never asked and the thread read only that no agent had anything to say."""
    alice, boss = letta.add_agent("alice"), letta.add_agent("boss")
    letta.set_reply(alice, [])
    target = Target("agents", (AgentRef(alice, "alice"),), manager_type="supervisor", manager=AgentRef(boss, "boss"))
    events = run(letta, target)
    assert [i.agent_id for i in letta.inputs] == [alice, boss]
    assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["boss"], events


def test_a_worker_still_answering_when_another_meets_a_server_wide_failure_is_not_cut_off() -> None:
    """The workers are asked at once: alice's send, made already, is not cancelled by bob's failure (she would be
    asked twice on the next turn, her answer lost); the manager alone is not asked."""
    alice, bob, boss = AgentRef("agent-a", "alice"), AgentRef("agent-b", "bob"), AgentRef("agent-m", "boss")
    asked: list[str] = []

    class Workers(Step):
        async def step(
            self, agent: AgentRef, turn: TurnInput, transcript: Transcript, journal: Journal, key: str | None = None,
            frame: object = None,
        ) -> list[TurnEvent]:
            asked.append(agent.name)
            if agent is bob:
                return [AgentFailure("bob", "refused", Kind.RATE_LIMITED, bob.id, step=bob.id)]
            await asyncio.sleep(0.05)
            return [AgentReply(agent.name, f"{agent.name}'s answer", agent.id, step=agent.id)]

    async def go() -> list[TurnEvent]:
        target = Target("agents", (alice, bob), manager_type="supervisor", manager=boss)
        journal = SharedTranscript()
        turn = TurnInput("hi all", OTID, "maria")
        return [e async for e in supervise(Workers(), target, boss, turn, journal, journal)]

    events = asyncio.run(go())
    assert [(e.agent_name, type(e).__name__) for e in events] == [
        ("bob", "AgentFailure"), ("alice", "AgentReply"), (None, "AgentFailure")
    ]
    assert asked == ["alice", "bob"]


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def images_in(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages for part in (m.get("content") or []) if isinstance(part, dict)
               and part.get("type") == "image")


def test_a_dynamic_manager_is_not_sent_the_persons_image_on_its_choices(letta: FakeLetta) -> None:
    """As Letta's DynamicMultiAgent, the manager choosing who speaks gets text only. Before: the person's picture
    went with every choice (max_turns times), and a manager whose model takes no images failed every such turn."""
    alice, bob, boss = letta.add_agent("alice"), letta.add_agent("bob"), letta.add_agent("boss")
    letta.set_reply(boss, lambda text: "bob" if "alice just spoke" in text else "alice")
    target = Target("agents", (AgentRef(alice, "alice"), AgentRef(bob, "bob")), manager_type="dynamic",
                    manager=AgentRef(boss, "boss"), max_turns=2)

    async def go() -> list[TurnEvent]:
        client = LettaClient(letta.base_url)
        try:
            turn = TurnInput("what is in this picture?", OTID, "maria", images=(Image("image/png", PNG, "p.png"),))
            journal = SharedTranscript()
            return [e async for e in BridgeRunner(client, patience=1.0).run(target, turn, journal, journal)]
        finally:
            await client.aclose()

    events = asyncio.run(go())
    assert [e.agent_name for e in events if isinstance(e, AgentReply)] == ["alice", "bob"]
    to_members = [images_in(i.messages) for i in letta.inputs if i.agent_id in (alice, bob)]
    assert to_members == [1, 1]  # each member's first send carries the picture
    to_manager = [images_in(i.messages) for i in letta.inputs if i.agent_id == boss]
    assert to_manager == [0, 0], f"the manager got the person's picture with its choices: {to_manager}"
