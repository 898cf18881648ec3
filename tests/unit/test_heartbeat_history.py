"""0.11.7 (memgpt_v2 agents): a tool called with request_heartbeat=true stores a heartbeat as a *user* message
(letta/server/rest_api/utils.py create_heartbeat_system_message: role=user, content get_heartbeat(...), packed
JSON {"type": "heartbeat", ...}), and the history route lists it as a `user_message` (schemas/message.py
_convert_user_message; system.unpack_message leaves a heartbeat packed). An agent that updates its memory and
then answers thus has a user_message between the otid's message and its answer. A send looked up after a crash
(or a lost connection) must still find that answer, and a 0.11.7 group send's member must count as answered.
Taken over from the reviewer revGB; the real servers' histories are reference/letta/*/agents-history-memory-
heartbeat.json (reference/letta/README.md §24)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge.domain import AgentRef, Target, TurnInput
from bridge.letta.bridge_runner import BridgeRunner
from bridge.letta.client import LettaClient
from bridge.letta.models import MESSAGE_LIST, UserMessage
from bridge.letta.own_messages import written_by_letta
from bridge.letta.recovery import group_settled, replies_after, waiting_after
from tests.fakes.cut_relay import CutOnce
from tests.fakes.letta import FakeLetta
from tests.fakes.letta_shapes import body
from tests.unit.test_gateway_errors import CLOUDFLARE, SEND, page, said
from tests.unit.test_patterns import MemoryJournal, NoTranscript

OTID = "5f0c1d7e-0000-4000-8000-000000000001"
HEARTBEAT = json.dumps({
    "type": "heartbeat",
    "reason": "[This is an automated system message hidden from the user] Function called using "
              "request_heartbeat=true, returning control",
    "time": "2026-12-08 01:40:00 AM UTC+0000",
}, indent=2)
KEEP_ALIVE = ("<system-alert>Automated keep-alive ping. Ignore this message and continue from where you stopped."
              "</system-alert>")


def _history(between: str = HEARTBEAT) -> list:
    return MESSAGE_LIST.validate_python([
        {"id": "message-1", "date": "2026-12-08T01:40:00+00:00", "name": "maria", "message_type": "user_message",
         "otid": OTID, "content": "remember I like tea, then say hi"},
        {"id": "message-2", "date": "2026-12-08T01:40:01+00:00", "name": None, "message_type": "reasoning_message",
         "otid": "x-2", "reasoning": "Saving that."},
        {"id": "message-2", "date": "2026-12-08T01:40:01+00:00", "name": None, "message_type": "tool_call_message",
         "otid": "x-3", "tool_call": {"name": "core_memory_append", "tool_call_id": "call_1",
                                      "arguments": "{\"label\": \"human\", \"content\": \"likes tea\", "
                                                   "\"request_heartbeat\": true}"}},
        {"id": "message-3", "date": "2026-12-08T01:40:01+00:00", "name": "core_memory_append",
         "message_type": "tool_return_message", "otid": "x-4", "tool_return": "None", "status": "success",
         "tool_call_id": "call_1"},
        {"id": "message-4", "date": "2026-12-08T01:40:01+00:00", "name": None, "message_type": "user_message",
         "otid": None, "content": between},
        {"id": "message-5", "date": "2026-12-08T01:40:02+00:00", "name": None, "message_type": "reasoning_message",
         "otid": "x-5", "reasoning": "Replying to the user."},
        {"id": "message-5", "date": "2026-12-08T01:40:02+00:00", "name": None, "message_type": "assistant_message",
         "otid": "x-6", "content": "alice says hi, noted: tea"},
    ])


def test_an_answer_after_a_tool_call_with_a_heartbeat_is_found_in_history() -> None:
    found = replies_after(_history(), OTID)
    assert found is not None
    assert found.texts == ("alice says hi, noted: tea",), "the agent's answer after its heartbeat was not found"


@pytest.mark.parametrize("between", [KEEP_ALIVE, json.dumps({"type": "system_alert", "message": "m", "time": "t"})],
                         ids=["0.16.8-keep-alive", "system-alert"])
def test_an_answer_after_another_message_letta_wrote_itself_is_found_in_history(between: str) -> None:
    """0.16.8's keep-alive (reference §17) and letta/system.py's packed system alerts are Letta's, not a user's."""
    found = replies_after(_history(between), OTID)
    assert found is not None and found.texts == ("alice says hi, noted: tea",)


def test_a_later_users_message_still_ends_the_turn() -> None:
    """A message someone sent (a group's wrapped copy too: `{"type": "user_message", ...}`) is the next turn."""
    for later in ("and now?", json.dumps({"type": "user_message", "message": "and now?", "time": "t"}, indent=2)):
        found = replies_after(_history(later), OTID)
        assert found is not None and found.texts == (), later
    assert not written_by_letta(UserMessage(content='{"type": "heartbeat"}'))  # letta/system.py always packs a time


@pytest.mark.parametrize("version", ["0.11.7", "0.16.8"])
def test_the_answer_is_found_in_a_real_servers_history_after_a_memory_save(version: str) -> None:
    """The real servers' histories after "please remember I like tea" (tests/real/capture_heartbeat.py): 0.11.7
    stores the heartbeat user message between the tool's return and the answer, 0.16.8 none."""
    history = MESSAGE_LIST.validate_python(body(version, "agents-history-memory-heartbeat"))
    asked = next(m for m in history if isinstance(m, UserMessage) and m.otid)
    beats = [m for m in history if isinstance(m, UserMessage) and written_by_letta(m)]
    assert [json.loads(str(m.content))["type"] for m in beats] == (["login", "heartbeat"] if version == "0.11.7"
                                                                     else [])
    found = replies_after(history, str(asked.otid))
    assert found is not None and found.texts == ("alice says hi",)


def test_a_decisions_answer_after_a_heartbeat_is_still_in_its_chain() -> None:
    """waiting_after: a request the agent made after a heartbeat is still its answer to the decision."""
    raw = [m.model_dump() for m in _history()][:4]
    raw += [{"id": "message-9", "message_type": "user_message", "content": HEARTBEAT},
            {"id": "message-10", "message_type": "approval_request_message",
             "tool_call": {"name": "shout", "arguments": "{}", "tool_call_id": "call_2"}}]
    [waiting] = waiting_after(MESSAGE_LIST.validate_python(raw), {"call_1"})
    assert waiting.calls[0].tool_call_id == "call_2"


class _History:
    async def history(self, agent_id: str, limit: int = 100, before: str | None = None) -> list:
        return _history()


def test_a_group_member_that_answered_after_a_heartbeat_counts_as_answered() -> None:
    async def go() -> dict:
        return await asyncio.wait_for(group_settled(_History(), [("agent-a", "alice")], OTID, 3.0), 10)  # type: ignore[arg-type]

    found = asyncio.run(go())
    assert found["agent-a"].texts == ("alice says hi, noted: tea",)


def _turn(url: str, alice: str) -> list:
    async def go() -> list:
        client = LettaClient(url, retry_base=0.01, send_retries=2)
        try:
            runner = BridgeRunner(client, patience=1.0)
            target = Target("agents", (AgentRef(alice, "alice"),))
            turn = TurnInput("please remember I like tea", OTID, "maria")
            return [e async for e in runner.run(target, turn, NoTranscript(), MemoryJournal())]
        finally:
            await client.aclose()

    return asyncio.run(asyncio.wait_for(go(), 20))


def test_an_answer_after_a_heartbeat_is_read_back_after_a_gateway_error() -> None:
    """No crash: the gateway forwarded the send, 0.11.7 ran it (a memory save, then the answer) and the gateway
    answered 524. The answer looked up by otid was empty: "No agent had anything to say"."""
    with FakeLetta(version="0.11.7") as letta:
        alice = letta.add_agent("alice")
        letta.set_saves_memory(alice)
        letta.gateway_next("POST", SEND, 524, page(524, "A timeout occurred"), CLOUDFLARE)
        events = _turn(letta.base_url, alice)
        assert len(letta.inputs) == 1, "the agent was asked twice"
        assert said(events) == ["alice says hi"], events


def test_an_answer_after_a_heartbeat_is_read_back_after_the_connection_was_cut() -> None:
    """No crash: the connection dropped while 0.11.7's answer came back; the turn is read back from history."""
    with FakeLetta(version="0.11.7") as letta, CutOnce(int(letta.base_url.rsplit(":", 1)[1]), b"says hi") as relay:
        alice = letta.add_agent("alice")
        letta.set_saves_memory(alice)
        events = _turn(relay.url, alice)
        assert relay.cut.is_set(), "the answer was never cut"
        assert len(letta.inputs) == 1, "the agent was asked twice"
        assert said(events) == ["alice says hi"], events


@pytest.mark.parametrize(
    "words",
    [
        "<system-alert>deploy of api finished</system-alert>",  # LETTA_CONTEXT_PREFIX="", or another Letta client
        json.dumps({"type": "system_alert", "message": "disk almost full", "time": "2026-12-08 01:40:00 AM UTC+0000"}),
    ],
)
def test_a_later_persons_message_that_looks_like_lettas_own_still_ends_the_turn(words: str) -> None:
    """A message someone sent (named, with its otid, as every bridge send is) whose words look like one Letta writes
    itself is still the next turn: the turn read back before it must not take that turn's answer."""
    first, second = "5f0c1d7e-0000-4000-8000-00000000000a", "5f0c1d7e-0000-4000-8000-00000000000b"
    history = MESSAGE_LIST.validate_python(
        [
            {"id": "m1", "message_type": "user_message", "otid": first, "name": "maria", "content": "hi"},
            {"id": "m2", "message_type": "assistant_message", "otid": "x2", "content": "hello maria"},
            {"id": "m3", "message_type": "user_message", "otid": second, "name": "bob", "content": words},
            {"id": "m4", "message_type": "assistant_message", "otid": "x4", "content": "noted, bob"},
        ]
    )
    found = replies_after(history, first)
    assert found is not None and found.texts == ("hello maria",), found
