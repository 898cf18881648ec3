"""An agent that runs out of steps (Letta's `max_steps`, 50 by default) in a tool loop ends its run with
`stop_reason: max_steps` and no words: seen on a real 0.16.8 (with Redis) asked through its `default` thread, whose
stream brought 50 `tool_call_message`/`tool_return_message` pairs, then `{"message_type":"stop_reason",
"stop_reason":"max_steps"}`, usage and `[DONE]`. The thread must say the agent stopped before finishing (as it says
for `max_tokens_exceeded`), not that nobody had anything to say."""

from __future__ import annotations

from bridge.domain import AgentFailure, AgentRef, AgentReply, Target, TurnEvent
from bridge.letta.appserver.turn import turn_error
from tests.fakes.letta import FakeLetta
from tests.unit.test_patterns_play import run


def _frame(body: str) -> bytes:
    return b"data: " + body.encode() + b"\n\n"


def _max_steps_stream(steps: int) -> bytes:
    frames = [_frame('{"id":"ping-1","message_type":"ping","run_id":"run-1","seq_id":1}')]
    for n in range(steps):
        call = f"call_{n:04d}"
        frames.append(_frame(
            f'{{"id":"message-c{n}","message_type":"tool_call_message","otid":"o-c{n}","run_id":"run-1",'
            f'"step_id":"step-{n}","tool_call":{{"name":"conversation_search","arguments":"{{}}",'
            f'"tool_call_id":"{call}"}}}}'
        ))
        frames.append(_frame(
            f'{{"id":"message-r{n}","message_type":"tool_return_message","otid":"o-r{n}","run_id":"run-1",'
            f'"step_id":"step-{n}","name":"conversation_search","tool_return":"No results found.",'
            f'"status":"success","tool_call_id":"{call}"}}'
        ))
    frames.append(_frame('{"message_type":"stop_reason","stop_reason":"max_steps"}'))
    frames.append(_frame('{"message_type":"usage_statistics","completion_tokens":350,"prompt_tokens":550,'
                         '"total_tokens":900,"step_count":50}'))
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


SSE = {"content-type": "text/event-stream; charset=utf-8"}


def _alice_answers(stream: bytes) -> list[TurnEvent]:
    """What the bridge runner makes of alice's send to her own (`default`) thread answering `stream`."""
    with FakeLetta(version="0.16.8", redis=True) as letta:
        alice = letta.add_agent("alice")
        letta.fail_next("POST", r"/v1/conversations/default/messages", 200, raw=stream, headers=SSE)
        return run(letta, Target("agents", (AgentRef(alice, "alice"),)))


def test_an_agent_that_ran_out_of_steps_is_said_to_have_stopped_not_to_have_nothing_to_say() -> None:
    """50 tool calls and no words, then `max_steps`: the thread is told alice stopped before finishing."""
    events = _alice_answers(_max_steps_stream(50))
    said = [e for e in events if isinstance(e, (AgentReply, AgentFailure))]
    assert said, f"alice ran out of steps and the thread is told nobody had anything to say: {events}"
    failures = [e for e in said if isinstance(e, AgentFailure)]
    assert failures, f"alice's answer, cut short by her step limit, was taken as finished: {said}"
    assert "stopped before finishing" in failures[-1].message and "Ask alice to continue" in failures[-1].message


def test_words_before_the_step_limit_are_followed_by_the_cut_short_notice() -> None:
    """Words alice wrote before her tool loop used up her steps are posted, and then said to be cut short: her own
    words, named as hers (in a thread several agents answer, "any answer above" could be another agent's)."""
    words = _frame('{"id":"message-a","message_type":"assistant_message","otid":"o-a","run_id":"run-1",'
                   '"step_id":"step-a","content":"Let me look that up."}')
    events = _alice_answers(_max_steps_stream(3).replace(b"data: ", words + b"data: ", 1))
    said = [e for e in events if isinstance(e, (AgentReply, AgentFailure))]
    assert [type(e) for e in said] == [AgentReply, AgentFailure], said
    reply, failure = said
    assert isinstance(reply, AgentReply) and reply.text == "Let me look that up."
    assert isinstance(failure, AgentFailure) and "what alice wrote above is cut short" in failure.message, failure
    assert "any answer above" not in failure.message, failure


def test_an_app_server_turn_that_ran_out_of_steps_is_said_as_on_rest() -> None:
    """Should the server behind an App Server end a turn with `max_steps`, it is said as on REST servers."""
    failure = turn_error("max_steps", None)
    assert failure is not None and failure.out_of_steps
    assert "stopped before finishing" in failure.explain("alice")
