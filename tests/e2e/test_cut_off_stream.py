"""A token stream that breaks in the middle of an answer (the model fails mid-reply: real 0.16.8 ends the stream
with the `llm_api_error` stop reason and an `error` event, as in reference/letta/0.16.8/llm500-agents-stream-
tokens.json, after the tokens so far): the words so far were posted as the agent's finished reply, and the next
agent of the group was told them as that. They are marked cut off (revQ); Letta kept nothing of the step."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_slack_trouble import ask, rig

ERROR_TAIL = (
    'data: {"message_type":"stop_reason","stop_reason":"llm_api_error"}\n\n'
    'event: error\ndata: {"message_type":"error_message","run_id":"run-1","error_type":"llm_error",'
    '"message":"An error occurred with the LLM request.","detail":"boom"}\n\ndata: [DONE]\n\n'
)


def _token(text: str) -> str:
    return "data: " + json.dumps({"id": "message-1", "message_type": "assistant_message", "otid": "o-1",
                                  "step_id": "step-1", "run_id": "run-1", "content": text}) + "\n\n"


def test_an_answer_whose_stream_breaks_midway_is_marked_cut_off(tmp_path: Path) -> None:
    raw = (_token("The plan ") + _token("is to ship ") + _token("the retry") + ERROR_TAIL).encode()
    with rig(tmp_path, ("alice", "bob"), LETTA_STREAM_TOKENS="true") as (slack, letta, bridge, [_, bob]):
        letta.fail_next("POST", r"/v1/(agents|conversations)/[^/]+/messages(/stream)?", 200, raw=raw,
                        headers={"content-type": "text/event-stream; charset=utf-8"})
        _, texts = ask(slack, bridge)
        assert texts[0].startswith("The plan is to ship the retry") and "cut off" in texts[0], texts
        [told] = [i.text for i in letta.inputs if i.agent_id == bob]
        assert "The plan is to ship the retry _(cut off)_" in told, told


def test_an_answer_whose_tokens_all_came_before_the_failure_of_a_later_step_is_not_marked(tmp_path: Path) -> None:
    """A failure after the answer's message was complete (another message came between) cuts nothing off."""
    tool_call = "data: " + json.dumps({"id": "message-2", "message_type": "reasoning_message", "otid": "o-2",
                                       "step_id": "step-2", "run_id": "run-1", "reasoning": "more to do"}) + "\n\n"
    raw = (_token("All done.") + tool_call + ERROR_TAIL).encode()
    with rig(tmp_path, ("alice",), LETTA_STREAM_TOKENS="true") as (slack, letta, bridge, _):
        letta.fail_next("POST", r"/v1/(agents|conversations)/[^/]+/messages(/stream)?", 200, raw=raw,
                        headers={"content-type": "text/event-stream; charset=utf-8"})
        _, texts = ask(slack, bridge)
        assert texts[0] == "All done.", texts


def test_an_answer_its_stream_said_was_complete_is_not_marked(tmp_path: Path) -> None:
    """revU: its last token, then Letta's normal `end_turn` (and usage), then an error event: the answer was whole
    when the run failed after it."""
    tail = (
        'data: {"message_type":"stop_reason","stop_reason":"end_turn"}\n\n'
        'data: {"message_type":"usage_statistics","completion_tokens":5,"prompt_tokens":10,"total_tokens":15,'
        '"step_count":1}\n\n'
        'event: error\ndata: {"message_type":"error_message","run_id":"run-1","error_type":"internal_error",'
        '"message":"An error occurred.","detail":"boom"}\n\ndata: [DONE]\n\n'
    )
    raw = (_token("All ") + _token("done.") + tail).encode()
    with rig(tmp_path, ("alice",), LETTA_STREAM_TOKENS="true") as (slack, letta, bridge, _):
        letta.fail_next("POST", r"/v1/(agents|conversations)/[^/]+/messages(/stream)?", 200, raw=raw,
                        headers={"content-type": "text/event-stream; charset=utf-8"})
        _, texts = ask(slack, bridge)
        assert texts[0] == "All done.", texts
