"""The fake Letta 0.16.8's tool approvals, shaped by the captures (reference/letta/README.md section 17):

- an agent told to `ask_approval` answers its next message with an `approval_request_message` (its `otid` equal to
  its `id`, one `tool_calls` entry per call) and `stop_reason: requires_approval`, non-streamed or streamed; with
  `stream_tokens` the request streams in fragments of that one message, as approval-stream-tokens.json shows: each
  fragment's `tool_call` and `tool_calls` one object (not a list), the first naming the tool with the start of its
  arguments, the next `name: null` with the rest;
- the request takes the model's time first (`set_delay`), as every send does (section 19): a run listed active, a
  stream's ping first and every `ping_interval`, nothing stored until the step ends, the run over once it asks;
  with Redis a background send's run keeps its numbered events, and re-attaching to it by its otid sends them
  again (redis-approval-background-send-stream, redis-approval-stream-resume-by-otid);
- while that waits, a new user message to the same thread (the agent's own, or one conversation: the pending
  state belongs to one thread) gets 409 `PENDING_APPROVAL` (agent route), 409 with a plain `detail`
  (conversation route), or a 200 stream with `stop_reason: error` and the CONFLICT `error_message`;
- an `approval` message with exactly the pending tool_call_ids runs the tools (a `tool_return_message`,
  `success`, or `error` with the captured denial text; several calls in ONE message listing each in
  `tool_returns`, parallel-tools-approvals-agent-approve-both.json) and then the agent's next turn (its words in
  fragments with `stream_tokens`, approval-approve-stream-tokens.json), after the model's time (`set_delay`: the
  decision, its returns and what the agent says or asks next are stored only when the step ends); history keeps the
  `approval_response_message` before the returns; other ids get the captured
  400 `Invalid tool call IDs`; an approval when nothing waits is answered 200 with another turn
  (approval-approve-again.json: the server does not reject it);
- words the agent says in the same model answer as its tool call come first, as an `assistant_message` of the same
  `id` (its `otid` the id's uuid ending in `80`), in the answer and in history (approval-said-first-stream.json,
  approval-said-first-history.json).

Several calls in one request (a model with `parallel_tool_calls`) were captured on real 0.16.8
(parallel-tools-*.json): one approval_request_message lists them all, and the server wants one decision for each
(parallel-tools-approvals-agent-approve-first-only.json: the 400 "Expected '[...]'").
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import letta_runs, letta_stream
from . import letta_shapes as S
from .letta_shapes import new_id, wire_date

if TYPE_CHECKING:
    from .letta import FakeLetta, Recorded

V = "0.16.8"
DENIED = "Error: request to call tool denied. User reason: {reason}"


@dataclass
class Pending:
    request_id: str
    calls: list[dict[str, str]]


@dataclass
class ApprovalState:
    asks: dict[str, list[list[tuple[str, str]]]] = field(default_factory=dict)  # agent -> queued requests
    said: dict[str, list[str]] = field(default_factory=dict)  # agent -> the words before each queued request
    pending: dict[str, Pending] = field(default_factory=dict)  # thread key (conversation or agent) -> pending
    decisions: list[dict[str, Any]] = field(default_factory=list)  # every approval message received
    # agent -> requests its model makes next, after the tool return of a decision (a model calling tools in turn,
    # as tests/real/llm.py does for "use tool A use tool B")
    then: dict[str, list[list[tuple[str, str]]]] = field(default_factory=dict)


def _thread(fake: FakeLetta, rec: Recorded) -> tuple[str, str | None] | None:
    """(agent id, conversation or None) of a send route."""
    parts = rec.path.split("/")
    body = rec.body if isinstance(rec.body, dict) else {}
    if rec.path.startswith("/v1/agents/") and len(parts) >= 5 and parts[4] == "messages":
        return parts[3], None
    if rec.path.startswith("/v1/conversations/") and rec.path.endswith("/messages"):
        if parts[3] == "default":
            return str(body.get("agent_id") or ""), None
        with fake._lock:
            record = fake._conversations.get(parts[3])
        return (str(record["agent_id"]), parts[3]) if record else None
    return None


def _streamed(rec: Recorded) -> bool:
    body = rec.body if isinstance(rec.body, dict) else {}
    return rec.path.endswith("/stream") or (rec.path.startswith("/v1/conversations/") and body.get("streaming", True))


async def handle(fake: FakeLetta, request: web.Request, rec: Recorded) -> web.StreamResponse | None:
    """Answer a send that approvals concern; None for every other request (the fake's usual routes)."""
    if rec.method != "POST" or fake.version != V:
        return None
    where = _thread(fake, rec)
    if where is None:
        return None
    agent_id, conversation = where
    key = conversation or agent_id
    body = rec.body if isinstance(rec.body, dict) else {}
    messages = body.get("messages") or []
    first = messages[0] if messages and isinstance(messages[0], dict) else {}
    state = fake.approval_state
    with fake._lock:
        pending = state.pending.get(key)
        asks = state.asks.get(agent_id) or []
    if first.get("type") == "approval":
        return await _decided(fake, request, rec, agent_id, conversation, first, pending)
    if pending is not None:
        return await _refused(fake, request, rec, conversation)
    if asks:
        return await _ask(fake, request, rec, agent_id, conversation, first)
    return None


async def _ask(
    fake: FakeLetta, request: web.Request, rec: Recorded, agent_id: str, conversation: str | None,
    first: dict[str, Any],
) -> web.StreamResponse:
    with fake._lock:
        calls = fake.approval_state.asks[agent_id].pop(0)
        words = fake.approval_state.said[agent_id].pop(0)
    tokens = bool(body_of(rec).get("stream_tokens")) and _streamed(rec)
    if fake.redis and _streamed(rec) and body_of(rec).get("background"):
        # A background run (Redis): its events numbered and kept, re-attached by its otid whether it still runs or
        # has stopped to ask (redis-approval-background-send-stream, redis-approval-stream-resume-by-otid).
        lock = conversation or agent_id
        run = letta_runs.start(fake, agent_id, "send_message", conversation=conversation, lock=lock,
                               otid=first.get("otid"), background=True)
        letta_runs.running(run)
        fake._background(_in_background(fake, run, agent_id, conversation, first, calls, words, tokens))
        return await letta_runs.follow(fake, request, V, run, None)
    # The model's time, as on every send (reference README section 19): a run listed active, a stream's pings, and
    # nothing stored until the step ends. A client gone meanwhile stops the pings, not the step.
    run = letta_runs.start(fake, agent_id, "send_message", conversation=conversation)
    response: web.StreamResponse | None = None
    inp = fake._begin_input(agent_id, S.joined_text([first]), [first], first.get("otid"), first.get("name"),
                            conversation)
    inp.run_id = run.id
    try:
        if _streamed(rec):
            letta_runs.running(run)
            response = web.StreamResponse(status=200, headers={**letta_stream.SSE_HEADERS, **S.extra_headers(V)})
            await response.prepare(request)
            await response.write(letta_stream._frame(letta_stream._ping(run.id)))
            await letta_stream.pinging(fake, response, run.id, fake._llm_delay(agent_id))
        else:
            await fake._llm_delay(agent_id)
    finally:
        fake._end_input(inp)
    out = _asked(fake, run.id, agent_id, conversation, first, calls, words, tokens)
    letta_runs.end(run)
    return await _answer(fake, request, rec, out, "requires_approval", response)


async def _in_background(
    fake: FakeLetta, run: letta_runs.Run, agent_id: str, conversation: str | None, first: dict[str, Any],
    calls: list[tuple[str, str]], words: str, tokens: bool,
) -> None:
    """The model's time, then the words and the request as the run's numbered events, the run over once it asks."""
    run.add(letta_stream._ping(run.id) | {"seq_id": 0})
    inp = fake._begin_input(agent_id, S.joined_text([first]), [first], first.get("otid"), first.get("name"),
                            conversation)
    try:
        await fake._llm_delay(agent_id)
    finally:
        fake._end_input(inp)
    try:
        for message in _asked(fake, run.id, agent_id, conversation, first, calls, words, tokens):
            run.add(message)
        run.add({"message_type": "stop_reason", "stop_reason": "requires_approval"})
        usage = {k: v for k, v in fake._shapes(V).usage(1).items() if k != "message_type"}
        run.add({"message_type": "usage_statistics", **usage})
        run.add("[DONE]")
    finally:
        letta_runs.end(run)


def _asked(
    fake: FakeLetta, run_id: str, agent_id: str, conversation: str | None, first: dict[str, Any],
    calls: list[tuple[str, str]], words: str, tokens: bool, user_too: bool = True,
) -> list[dict[str, Any]]:
    """The step's end: the user message, the words and the request stored, the request pending; what is sent."""
    template = S.body(V, "approval-send")["messages"][0]
    mid, step_id = new_id("message"), new_id("step")
    tool_calls = [
        {"name": name, "arguments": arguments, "tool_call_id": f"call_{new_id('x')[2:14]}"} for name, arguments in calls
    ]
    asked = {**template, "id": mid, "otid": mid, "date": wire_date(), "run_id": run_id, "step_id": step_id,
             "tool_call": tool_calls[0], "tool_calls": tool_calls}
    user = fake._shapes(V).message("user_message", id=new_id("message"), name=first.get("name"),
                                   otid=first.get("otid"), step_id=step_id, run_id=run_id,
                                   content=S.joined_text([first]))
    said = []
    if words:
        template = next(e["data"] for e in S.capture(V, "approval-said-first-stream")["response"]["events"]
                        if isinstance(e["data"], dict) and e["data"].get("message_type") == "assistant_message")
        said = [{**template, "id": mid, "otid": mid[8:42] + "80", "date": asked["date"], "run_id": run_id,
                 "step_id": step_id, "content": words}]
    fake._store(agent_id, None, [*([user] if user_too else []), *said, asked], conversation)
    with fake._lock:
        fake.approval_state.pending[conversation or agent_id] = Pending(mid, tool_calls)
    return [*said, *(_fragments(asked) if tokens else [asked])]


def body_of(rec: Recorded) -> dict[str, Any]:
    return rec.body if isinstance(rec.body, dict) else {}


def _fragments(asked: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole approval request as 0.16.8 streams it with stream_tokens (approval-stream-tokens.json): per call, its
    arguments in two fragments of the same message, `tool_call` and `tool_calls` each one delta object."""
    out: list[dict[str, Any]] = []
    for call in asked["tool_calls"]:
        arguments = call["arguments"]
        half = len(arguments) // 2
        for name, part in ((call["name"], arguments[:half]), (None, arguments[half:])):
            delta = {"name": name, "arguments": part, "tool_call_id": call["tool_call_id"]}
            out.append({**asked, "tool_call": delta, "tool_calls": dict(delta)})
    return out


async def _decided(
    fake: FakeLetta, request: web.Request, rec: Recorded, agent_id: str, conversation: str | None,
    decision: dict[str, Any], pending: Pending | None,
) -> web.StreamResponse:
    approvals = decision.get("approvals") or [
        {"approve": decision.get("approve"), "tool_call_id": decision.get("approval_request_id")}
    ]
    with fake._lock:
        fake.approval_state.decisions.append(copy.deepcopy(decision))
    got = [str(a.get("tool_call_id")) for a in approvals]
    if pending is not None:
        expected = [c["tool_call_id"] for c in pending.calls]
        if sorted(got) != sorted(expected):
            wrong = S.body(V, "approval-approve-wrong-id")["detail"]
            detail = wrong.replace("['call_fake41']", str(expected)).replace("['call_doesnotexist']", str(got))
            return fake._json(V, 400, {"detail": detail})
    run = letta_runs.start(fake, agent_id, "send_message", conversation=conversation)
    try:
        returned: list[dict[str, Any]] = []
        template = S.body(V, "approval-approve")["messages"][0]
        for entry in approvals if pending is not None else []:
            call = next(c for c in pending.calls if c["tool_call_id"] == entry.get("tool_call_id"))
            ok = bool(entry.get("approve"))
            result = _run_tool(call) if ok else DENIED.format(reason=entry.get("reason") or "")
            status = "success" if ok else "error"
            mid = new_id("message")
            returned.append({**template, "id": mid, "otid": mid[8:44] + "80", "date": wire_date(), "run_id": run.id,
                             "name": call["name"] if ok else None, "tool_return": result, "status": status,
                             "tool_call_id": call["tool_call_id"],
                             "tool_returns": [{**template["tool_returns"][0], "tool_return": result,
                                               "status": status, "tool_call_id": call["tool_call_id"]}]})
        if len(returned) > 1:
            returned = [_one_message(returned, pending)]
        with fake._lock:
            fake.approval_state.pending.pop(conversation or agent_id, None)
            again = (fake.approval_state.then.get(agent_id) or [None]).pop(0) if fake.approval_state.then.get(
                agent_id) else None
        if again is not None and pending is not None:
            # The model's time first (section 19): the decision, its tool return and the next request are stored
            # only when the step ends; a cancel meanwhile lists the run ended and does not stop the step.
            inp = fake._begin_input(agent_id, "", [decision], None, None, conversation)
            inp.run_id = run.id
            try:
                await fake._llm_delay(agent_id)
            finally:
                fake._end_input(inp)
            fake._store(agent_id, None, [_response(approvals, run.id), *returned], conversation)
            asked = _asked(fake, run.id, agent_id, conversation, {"role": "user", "content": []}, again, "", False,
                           user_too=False)
            return await _answer(fake, request, rec, [*returned, *asked[-1:]], "requires_approval")
        replies, _ = await fake._run_cancellable(agent_id, "", [decision], None, None, conversation=conversation,
                                                 run_id=run.id)
        out, _ = fake._shapes(V).turn(replies, name=None, step_id=new_id("step"), run_id=run.id, date=wire_date())
        fake._store(agent_id, None, [_response(approvals, run.id), *returned, *out], conversation)
    finally:
        letta_runs.end(run)
    if bool(body_of(rec).get("stream_tokens")) and _streamed(rec):  # the words in fragments, the tool's return
        # whole (approval-approve-stream-tokens.json)
        out = [p for m in out for p in (letta_stream._fragments(m) if m["message_type"] == "assistant_message"
                                        else [m])]
    return await _answer(fake, request, rec, [*returned, *out], "end_turn")


def _one_message(returned: list[dict[str, Any]], pending: Pending | None) -> dict[str, Any]:
    """Several calls decided at once are answered in ONE tool_return_message, as 0.16.8 does
    (parallel-tools-approvals-agent-approve-both.json): its `tool_returns` the denied calls' first, then the run
    ones', each in call order; its top-level fields the list's first entry's, and `name` the first call's."""
    ordered = [r for r in returned if r["status"] == "error"] + [r for r in returned if r["status"] != "error"]
    first = ordered[0]
    name = pending.calls[0]["name"] if pending is not None else first["name"]
    return {**first, "name": name, "tool_returns": [r["tool_returns"][0] for r in ordered]}


def _response(approvals: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """History keeps the decision between the request and the tool's return (approval-history-final.json, and
    seen again on a real 0.16.8 by tests/real/test_approvals_real.py)."""
    kept = next(m for m in S.body(V, "approval-history-final") if m.get("message_type") == "approval_response_message")
    first = approvals[0] if approvals else {}
    listed = [{"type": "approval", "tool_call_id": a.get("tool_call_id"), "approve": a.get("approve"),
               "reason": a.get("reason")} for a in approvals]
    return {**copy.deepcopy(kept), "id": new_id("message"), "date": wire_date(), "run_id": run_id,
            "approvals": listed, "approve": first.get("approve"), "approval_request_id": first.get("tool_call_id"),
            "reason": first.get("reason")}


def _run_tool(call: dict[str, str]) -> str:
    try:
        arguments = json.loads(call["arguments"])
    except ValueError:
        arguments = {}
    return str(arguments.get("message", "ok")).upper() if isinstance(arguments, dict) else "OK"


async def _refused(
    fake: FakeLetta, request: web.Request, rec: Recorded, conversation: str | None
) -> web.StreamResponse:
    if _streamed(rec):
        raw = str(S.capture(V, "approval-pending-new-message-stream")["response"]["body_raw"])
        response = web.StreamResponse(status=200, headers={**letta_stream.SSE_HEADERS, **S.extra_headers(V)})
        await response.prepare(request)
        await response.write(raw.encode())
        await response.write_eof()
        return response
    name = "approval-conversation-pending-new-message" if conversation else "approval-pending-new-message"
    return fake._json(V, 409, S.body(V, name))


async def _answer(
    fake: FakeLetta, request: web.Request, rec: Recorded, out: list[dict[str, Any]], stop: str,
    response: web.StreamResponse | None = None,
) -> web.StreamResponse:
    """The answer; `response`: a stream already begun (its ping written) while the model worked."""
    if not _streamed(rec):
        answer = fake._shapes(V).response(copy.deepcopy(out), 1)
        answer["stop_reason"] = {"message_type": "stop_reason", "stop_reason": stop}
        return fake._json(V, 200, answer)
    if response is None:
        response = web.StreamResponse(status=200, headers={**letta_stream.SSE_HEADERS, **S.extra_headers(V)})
        await response.prepare(request)
        await response.write(letta_stream._frame(letta_stream._ping(out[0].get("run_id") if out else None)))
    for message in out:
        await response.write(letta_stream._frame(message))
    await response.write(letta_stream._frame({"message_type": "stop_reason", "stop_reason": stop}))
    usage = {k: v for k, v in fake._shapes(V).usage(1).items() if k != "message_type"}
    await response.write(letta_stream._frame({"message_type": "usage_statistics", **usage}))
    await response.write(letta_stream._frame("[DONE]"))
    await response.write_eof()
    return response
