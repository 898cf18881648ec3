"""Reasoning and tool calls gathered from real captures, rendered compactly; token fragments joined into drafts."""

from __future__ import annotations

import itertools
import json
from typing import Any

from bridge.domain import AgentReply, Note
from bridge.letta.models import LettaResponse
from bridge.letta.notes import NoteTaker
from bridge.letta.stream import MESSAGE, Collector
from bridge.slack.render import notes_blocks
from tests.reference import LETTA, parallel_calls_unstreamed

REF = LETTA


def _capture(version: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REF / version / f"{name}.json").read_text())
    return data


def _sse(body: str) -> list[Any]:
    return [
        MESSAGE.validate_python(json.loads(line[5:]))
        for line in body.splitlines()
        if line.startswith("data:") and line[5:].strip() not in ("[DONE]", "")
    ]


def test_a_tool_call_and_its_return_become_one_note() -> None:
    response = LettaResponse.model_validate(_capture("0.16.8", "agents-send-tool-all-types")["response"]["body"])
    notes = NoteTaker()
    for message in response.messages:
        notes.add(message, "finn")
    assert notes.pop("finn") == (Note("tool", 'shout({"message": "finn says hi"}) → success'),)
    assert notes.pop("finn") == (), "notes are given once"


def test_streamed_reasoning_fragments_are_joined_per_member() -> None:
    body = _capture("0.11.7", "groups-stream-tokens-round_robin")["response"]["body_raw"]
    notes = NoteTaker()
    for message in _sse(body):
        notes.add(message, getattr(message, "name", None) or "group")
    assert notes.pop("alice") == (Note("reasoning", "Replying to the user."),)
    assert notes.pop("bob") == (Note("reasoning", "Replying to the user."),)


def test_token_collector_completes_a_members_reply_when_the_next_member_starts() -> None:
    body = _capture("0.11.7", "groups-stream-tokens-round_robin")["response"]["body_raw"]
    collector = Collector("group", tokens=True)
    done: list[tuple[str, str]] = []
    first_done_at = None
    for position, message in enumerate(_sse(body)):
        done += collector.add(message)
        if done and first_done_at is None:
            first_done_at = position
    done += collector.finish()
    assert done[:2] == [("alice", "alice says hi"), ("bob", "bob says hi")]
    # alice is complete as soon as bob's reasoning begins, not when bob's reply arrives.
    assert first_done_at is not None and _sse(body)[first_done_at].message_type == "reasoning_message"


def test_0_16_8_token_fragments_grow_one_draft() -> None:
    body = _capture("0.16.8", "agents-stream-tokens")["response"]["body_raw"]
    collector = Collector("alice", tokens=True)
    drafts = []
    for message in _sse(body):
        assert collector.add(message) == []
        if collector.growing:
            drafts.append(collector.growing[1])
    assert len(drafts) > 1 and all(b.startswith(a) for a, b in itertools.pairwise(drafts))
    assert collector.finish() == [("alice", drafts[-1].strip())]


def test_notes_render_as_escaped_clipped_context_blocks() -> None:
    notes = [("reasoning", "Think <!channel> & " + "x" * 500), ("tool", "run(`rm`) → error")]
    blocks = notes_blocks(notes)
    assert [b["type"] for b in blocks] == ["context"]
    texts = [e["text"] for e in blocks[0]["elements"]]
    assert "<!channel>" not in texts[0] and "&lt;!channel&gt;" in texts[0] and len(texts[0]) < 340
    assert texts[1] == ":wrench: `run('rm') → error`"


def test_many_notes_stay_within_block_limits() -> None:
    blocks = notes_blocks([("reasoning", f"step {i}") for i in range(80)])
    assert len(blocks) == 5 and all(len(b["elements"]) <= 10 for b in blocks)
    assert blocks[-1]["elements"][-1]["text"] == "… and 31 more"


def test_a_reply_read_back_from_json_has_typed_notes() -> None:
    reply = AgentReply("alice", "hi", notes=({"kind": "tool", "text": "x()"},))  # type: ignore[arg-type]
    assert reply.notes == (Note("tool", "x()"),)


def test_parallel_calls_answered_in_one_message_each_have_their_status() -> None:
    """revZ, real 0.16.8 with parallel_tool_calls: ONE tool_return_message answers shout and whisper (its top
    level is shout's). Before, whisper's note had no status."""
    record = json.loads((LETTA / "0.16.8" / "parallel-tools-no-approval-send-stream-tokens.json").read_text())
    notes = NoteTaker()
    for event in record["response"]["events"]:
        if isinstance(event["data"], dict):
            message = MESSAGE.validate_python(event["data"])
            notes.add(message, getattr(message, "name", None) or "pia")
    tools = [n.text for n in notes.pop("pia") if n.kind == "tool"]
    assert tools == ['shout({"message": "ok"}) → success', 'whisper({"message": "ok"}) → success'], tools


def test_parallel_calls_given_in_one_message_each_have_a_note() -> None:
    """revBO: without token streaming (and read back from history) 0.16.8 gives both calls in ONE
    tool_call_message, `tool_call` only the first. Before, whisper had no note at all."""
    notes = NoteTaker()
    for frame in parallel_calls_unstreamed():
        notes.add(MESSAGE.validate_python(frame), "pia")
    tools = [n.text for n in notes.pop("pia") if n.kind == "tool"]
    assert tools == ['shout({"message": "ok"}) → success', 'whisper({"message": "ok"}) → success'], tools
