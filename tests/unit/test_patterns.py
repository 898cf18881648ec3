"""The bridge runner's patterns against the fake Letta (0.16.8), with an in-memory journal and transcript."""

from __future__ import annotations

import asyncio

from bridge.domain import AgentFailure, AgentRef, AgentReply, StepRecord, Target, TurnEvent, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.patterns import chosen, dynamic_prompt, step_otid
from tests.fakes.letta import FakeLetta

OTID = "2988596c-00b3-45b5-a8bc-ace1e823ddc3"


class MemoryJournal:
    otid = OTID

    def __init__(self) -> None:
        self.steps: dict[str, StepRecord] = {}
        self.order: list[tuple[str, str]] = []

    async def step(self, key: str) -> StepRecord | None:
        return self.steps.get(key)

    async def sending(self, key: str) -> None:
        self.order.append(("sending", key))
        self.steps[key] = StepRecord("sending")

    async def answered(
        self, key: str, replies: list[AgentReply], failure: AgentFailure | None = None, seen_upto: int | None = None
    ) -> None:
        self.order.append(("answered", key))
        self.steps[key] = StepRecord("answered", tuple(replies), failure)


class NoTranscript:
    async def unseen(self, agent_id: str) -> tuple[list[AgentReply], int | None]:
        return [], None


def run(letta: FakeLetta, target: Target, journal: MemoryJournal) -> list[TurnEvent]:
    async def go() -> list[TurnEvent]:
        client = LettaClient(letta.base_url)
        try:
            runner = BridgeRunner(client, patience=1.0)
            return [e async for e in runner.run(target, TurnInput("hi all", OTID, "maria"), NoTranscript(), journal)]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_broadcast_asks_everyone_at_once_and_gives_the_fastest_first(letta: FakeLetta) -> None:
    slow, quick = letta.add_agent("slow"), letta.add_agent("quick")
    letta.set_delay(slow, 0.8)
    target = Target("agents", (AgentRef(slow, "slow"), AgentRef(quick, "quick")), broadcast=True)
    journal = MemoryJournal()
    events = run(letta, target, journal)
    assert [(e.agent_name, e.text) for e in events if isinstance(e, AgentReply)] == [
        ("quick", "quick says hi"), ("slow", "slow says hi")
    ]
    inputs = {i.agent_name: i for i in letta.inputs}
    assert inputs["quick"].started < inputs["slow"].finished  # type: ignore[operator]
    assert all(i.text == "hi all" and i.otid == OTID for i in inputs.values())
    assert journal.order[:2] == [("sending", slow), ("sending", quick)] or journal.order[:2] == [
        ("sending", quick), ("sending", slow)
    ]
    again = run(letta, target, journal)  # a resumed turn replays the journal and sends nothing
    assert len(letta.inputs) == 2 and [e.agent_name for e in again if isinstance(e, AgentReply)] == ["slow", "quick"]


def test_the_managers_answer_is_matched_against_member_names() -> None:
    members = [AgentRef("a1", "alice"), AgentRef("a2", "bob"), AgentRef("a3", "bobby")]
    assert chosen("Bob.", members) == members[1]
    assert chosen("I think bobby, then alice", members) == members[2]
    assert chosen("alice should go; bob next", members) == members[0]
    assert chosen("nobody", members) is None and chosen("alicejones", members) is None


def test_the_dynamic_prompt_is_documented_and_each_send_has_its_own_otid() -> None:
    said = [AgentReply("bob", "bob says hi")]
    prompt = dynamic_prompt("[maria] go", said, ["alice", "bob"], "DONE!")
    assert prompt == (
        '[maria] go\n\nSaid so far in this turn:\n{"agent": "bob", "text": "bob says hi"}\n\n'
        "You choose who speaks next in this group. Members: alice, bob.\n"
        "Answer with the name of the one member who should speak next, or DONE! if nobody needs to say more."
    )
    assert step_otid(OTID, "choose:0") != step_otid(OTID, "choose:1") and len(step_otid(OTID, "x")) == 36
    assert step_otid(OTID, "choose:0") == step_otid(OTID, "choose:0")


def test_a_conversation_made_again_reads_each_earlier_reply_once() -> None:
    """A thread's conversation made again (stuck after a drop, or gone): its first message quoted bob's and carol's
    replies under "Earlier in this Slack thread" and again among the group's replies since the agent last spoke."""
    from bridge.letta.patterns import message
    from bridge.letta.quoting import block, quoted
    from bridge.turn_input import THREAD_HISTORY_HEADER

    bob, carol = AgentReply("bob", "bob says hi", "agent-b"), AgentReply("carol", 'carol says "later"', "agent-c")
    earlier = block(THREAD_HISTORY_HEADER, [quoted("person", "ann", "hello"), quoted("agent", "bob", bob.text)])
    said = message(earlier + "\n\n", [bob, carol], "and now?", None)
    assert said.count(quoted("agent", "bob", bob.text)) == 1, said
    assert said.count(quoted("agent", "carol", carol.text)) == 1 and said.endswith("and now?")
    assert message("", [bob], "and now?", None).count(quoted("agent", "bob", bob.text)) == 1


def test_a_long_reply_in_the_thread_so_far_is_not_told_again_as_unseen() -> None:
    """The thread so far quotes a long reply cut to its most (6,000 characters); it was then told in full again
    among the group's replies since the agent last spoke."""
    from bridge.letta.patterns import message
    from bridge.slack.directory import Earlier
    from bridge.turn_input import THREAD_HISTORY_HEADER, thread_context

    long_reply = "ROLLBACK-RUNBOOK " + "run the step, check the dashboard. " * 200  # about 7,000 characters
    earlier = [Earlier("U0123ABCD", "maria", "how do we roll back?", ts="1.000001"), Earlier("", "", "", ts="1.000002")]
    history = thread_context(earlier, ["alice", "bob"], {"1.000002": ("alice", long_reply)}, THREAD_HISTORY_HEADER,
                             root="1.000001")
    said = message(history, [AgentReply("alice", long_reply)], "[maria in #ops on Slack] and now?", None)
    assert said.count("ROLLBACK-RUNBOOK") == 1, said
