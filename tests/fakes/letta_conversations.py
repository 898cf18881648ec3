"""The fake Letta's conversation routes, as 0.16.8 answers them (older versions have none: 404 Not Found).

- `POST /v1/conversations/?agent_id=`: a Conversation; 422 without `agent_id`, 404 for an unknown agent.
- `GET /v1/conversations/` (bare array, newest first), `GET` and `DELETE /v1/conversations/{id}` (`200 null`;
  then the id answers 404 everywhere but its message list).
- `GET /v1/conversations/{id}/messages`: a bare array, newest first unless `order=asc`, the conversation's own
  system_message included; `before`, `after`, `limit`. A deleted or unknown conversation lists `[]` (200), as
  a real 0.16.8 server answers (its route never looks the conversation up).
- `POST /v1/conversations/{id}/messages`: SSE by default (the agent stream's framing, `stream_tokens` too),
  a LettaResponse with `"streaming": false`; `default` with `agent_id` in the body sends to the agent's own thread,
  and `GET /v1/conversations/default/messages?agent_id=` lists it (without `agent_id`: 404, `default` taken for an
  id). Runs, locks and background sends: `letta_runs`; `background: true` needs Redis (`FakeLetta(redis=True)`):
  without it the send is refused 503 and nothing is stored (conversations-background-without-redis.json).

A conversation's messages are stored in its agent's history, tagged, so the agent route shows every thread
mixed (as captured) and the conversation route shows one.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import letta_refusals as R
from . import letta_runs, letta_stream
from . import letta_shapes as S
from .letta_shapes import new_id, wire_date

if TYPE_CHECKING:
    from .letta import FakeLetta, Handler, Recorded

UNKNOWN_CONVERSATION_ID = "conv-00000000-0000-4000-8000-000000000000"
DEFAULT = "default"  # with an agent_id: the agent's own thread (agent-direct mode, section 13)
MIN_ID_LENGTH = 41  # shorter ids are refused by the path's validation (422), as captured


def routes(fake: FakeLetta) -> list[tuple[str, list[tuple[str, Handler]]]]:
    async def create(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        return _create(fake, request, rec, v)

    async def listing(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        return _list(fake, request, v)

    async def get(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        return _check(fake, v, p["conv_id"]) or fake._json(v, 200, fake.conversations[p["conv_id"]])

    async def delete(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        err = _check(fake, v, p["conv_id"])
        if err is not None:
            return err
        with fake._lock:
            del fake._conversations[p["conv_id"]]
        return fake._json(v, 200, None)

    async def history(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        return _history(fake, request, v, p["conv_id"])

    async def send(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.StreamResponse:
        return await _send(fake, request, rec, v, p["conv_id"])

    return [
        (r"/v1/conversations/", [("GET", listing), ("POST", create)]),
        (r"/v1/conversations/(?P<conv_id>[^/]+)", [("GET", get), ("DELETE", delete)]),
        (r"/v1/conversations/(?P<conv_id>[^/]+)/messages", [("GET", history), ("POST", send)]),
    ]


def _conversation(agent_id: str, summary: str | None) -> dict[str, Any]:
    """A Conversation with the captured keys in the captured order."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    template: dict[str, Any] = S.body("0.16.8", "conversations-create")
    values = {
        "id": new_id("conv"),
        "agent_id": agent_id,
        "summary": summary,
        "created_at": now,
        "updated_at": now,
        "in_context_message_ids": [],
        "isolated_block_ids": [],
        "last_message_at": None,
    }
    return {key: values.get(key, value) for key, value in template.items()}


def _create(fake: FakeLetta, request: web.Request, rec: Recorded, v: str) -> web.Response:
    agent_id = request.query.get("agent_id")
    if agent_id is None:
        return fake._json(v, 422, S.body(v, "conversations-create-missing-agent-id"))
    with fake._lock:
        known = agent_id in fake._agents
    if not known:
        return fake._json(v, 404, S.body(v, "conversations-create-unknown-agent"))
    conversation = _conversation(agent_id, rec.body.get("summary") if isinstance(rec.body, dict) else None)
    system = fake._shapes(v).message(
        "system_message", id=new_id("message"), date=wire_date(), content=fake._shapes(v).system_prompt()
    )
    conversation["in_context_message_ids"] = [system["id"]]
    with fake._lock:
        fake._conversations[conversation["id"]] = conversation
    fake._store(agent_id, None, [system], conversation["id"])
    created = dict(conversation, in_context_message_ids=[])  # the create answer lists none yet (captured)
    return fake._json(v, 200, created)


def _list(fake: FakeLetta, request: web.Request, v: str) -> web.Response:
    q = request.query
    items = [c for c in fake.conversations.values() if "agent_id" not in q or c["agent_id"] == q["agent_id"]]
    page = S.page_objects(
        items,
        limit=S.to_int(q.get("limit"), 50),
        before=None,
        after=q.get("after"),
        descending=q.get("order", "desc") != "asc",
    )
    return fake._json(v, 200, page)


def _check(fake: FakeLetta, v: str, conv_id: str) -> web.Response | None:
    if len(conv_id) < MIN_ID_LENGTH:
        malformed = S.body(v, "conversations-get-malformed")
        return fake._json(v, 422, {**malformed, "detail": malformed["detail"].replace("not-a-conv", conv_id)})
    with fake._lock:
        known = conv_id in fake._conversations
    if known:
        return None
    unknown = S.body(v, "conversations-get-unknown")
    return fake._json(v, 404, {"detail": unknown["detail"].replace(UNKNOWN_CONVERSATION_ID, conv_id)})


def _history(fake: FakeLetta, request: web.Request, v: str, conv_id: str) -> web.Response:
    q = request.query
    if conv_id == DEFAULT and q.get("agent_id"):
        err = fake._agent_check(v, q["agent_id"])
        if err is not None:
            return err
        entries = fake.conversation_history(None, q["agent_id"])
    else:
        err = _check(fake, v, conv_id)
        if err is not None and err.status != 404:
            return err
        # An unknown or deleted conversation's messages list empty, not 404: the route looks only at the
        # conversation's (soft-deleted) message links (checked against a real 0.16.8 server).
        entries = [] if err is not None else fake.conversation_history(conv_id)
    types = q.getall("include_return_message_types", [])
    if types:
        entries = [e for e in entries if e["message_type"] in types]
    newest = q.get("order", "desc") != "asc"
    page = S.page_messages(
        entries, limit=S.to_int(q.get("limit"), 100), before=q.get("before"), after=q.get("after"), newest=newest
    )
    if conv_id == DEFAULT:  # the default thread lists oldest first whatever the order (visible-conversations-default-…)
        return fake._json(v, 200, page)
    return fake._json(v, 200, page[::-1] if newest else page)  # desc really lists newest first here


async def _send(fake: FakeLetta, request: web.Request, rec: Recorded, v: str, conv_id: str) -> web.StreamResponse:
    """A conversation send (`default` + `agent_id` in the body: the agent's own thread, agent-direct mode)."""
    msgs, bad = R.parse_send(v, rec.raw)
    if msgs is None:
        return fake._json(v, 422, bad)
    options = rec.body if isinstance(rec.body, dict) else {}
    if conv_id == DEFAULT:
        agent_id = str(options.get("agent_id") or "")
        if not agent_id:  # no agent: `default` is taken for a conversation id (redis-conversations-default-send-…)
            return fake._json(v, 404, S.body(v, "redis-conversations-default-send-without-agent-id"))
        err = fake._agent_check(v, agent_id)
        if err is not None:
            return err
        conversation: str | None = None
    else:
        err = _check(fake, v, conv_id)
        if err is not None:
            return err
        with fake._lock:
            record = fake._conversations[conv_id]
            record["last_message_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            agent_id = record["agent_id"]
        conversation = conv_id
    first = msgs[0] if msgs else {}
    otid = first.get("otid")
    streaming = bool(options.get("streaming", True))
    background = streaming and bool(options.get("background"))
    # Redis locks a conversation for a streamed send, and the default thread (by agent id) for any send.
    lock = (agent_id if conversation is None else conversation) if streaming or conversation is None else None
    if background and not fake.redis:  # refused before any run or message (conversations-background-without-redis)
        refused = S.capture(v, "conversations-background-without-redis")["response"]
        return fake._json(v, refused["status"], refused["body"])
    if fake.redis:
        same = letta_runs.by_otid(fake, otid) if background and otid else None
        if same is not None:  # a retry of a background send, running or finished, is attached to the first run
            # (concurrent-redis-conversations-same-otid-background, redis-conversations-same-otid-background-after-…)
            return await letta_runs.follow(fake, request, v, same, None)
        holder = letta_runs.holder(fake, lock) if lock is not None else None
        if holder is not None:
            return fake._json(v, 409, R.conversation_busy(holder.id))
    run = letta_runs.start(
        fake, agent_id, "send_conversation_message" if conversation else "send_message", conversation=conversation,
        lock=lock if fake.redis else None, otid=otid, background=background,
    )
    if streaming:
        letta_runs.running(run)  # a streamed send's run is `running`, a plain one's stays `created` (section 19)
    tokens = bool(options.get("stream_tokens"))
    if background:
        fake._background(_in_background(fake, v, agent_id, msgs, run, conversation, tokens))
        return await letta_runs.follow(fake, request, v, run, None)
    shapes = fake._shapes(v)
    response: web.StreamResponse | None = None
    try:
        if streaming:
            response = web.StreamResponse(status=200, headers={**letta_stream.SSE_HEADERS, **S.extra_headers(v)})
            await response.prepare(request)
            await response.write(letta_stream._frame(letta_stream._ping(run.id)))
            out, steps = await letta_stream.pinging(fake, response, run.id,
                                                    fake.agent_turn(v, agent_id, msgs, run, conversation))
        else:
            out, steps = await fake.agent_turn(v, agent_id, msgs, run, conversation)
    finally:
        letta_runs.end(run, leak=not streaming)  # 0.16.8 never ends a non-streamed conversation send's run
    if response is None:
        return fake._json(v, 200, shapes.response(copy.deepcopy(out), steps))
    if run.cancelled:
        return await letta_stream.cancelled_stream(response)
    await letta_stream.finish_turn_stream(fake, agent_id, response, shapes, out, steps, tokens)
    return response


async def _in_background(fake: FakeLetta, v: str, agent_id: str, msgs: list[dict[str, Any]], run: letta_runs.Run,
                         conversation: str | None, tokens: bool) -> None:
    """A background run: its events numbered with seq_id, kept for whoever attaches (captured framing)."""
    run.add(letta_stream._ping(run.id) | {"seq_id": 0})
    try:
        out, steps = await fake.agent_turn(v, agent_id, msgs, run, conversation)
        if run.cancelled:  # the reply is stored; the stream says only `cancelled`, then [DONE], unlike a
            # foreground stream (redis-conversations-background-cancelled.json)
            run.add({"message_type": "stop_reason", "stop_reason": "cancelled"})
            run.add("[DONE]")
            return
        for message in copy.deepcopy(out):
            parts = letta_stream._fragments(message) if tokens and message["message_type"] == "assistant_message" \
                else [message]
            for part in parts:
                run.add(part)
                if len(parts) > 1 and fake.token_delay:  # tokens reach Redis as the model writes them
                    await asyncio.sleep(fake.token_delay)
        run.add({"message_type": "stop_reason", "stop_reason": "end_turn"})
        usage = {k: v2 for k, v2 in fake._shapes(v).usage(steps).items() if k != "message_type"}
        run.add({"message_type": "usage_statistics", **usage})
        run.add("[DONE]")
    finally:
        letta_runs.end(run)
