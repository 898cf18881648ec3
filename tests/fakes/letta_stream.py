"""The fake Letta's SSE routes (`/messages/stream`), framed per version as captured.

- 0.11.7 agent stream: messages, stop_reason, usage_statistics, [DONE].
- 0.11.7 group stream: each speaker's messages as soon as it has spoken (named), usage, [DONE]; no stop_reason.
- 0.16.8 agent stream: a ping first and one every `FakeLetta.ping_interval` (20 s) while the model works, messages,
  stop_reason, usage, [DONE]; with stream_tokens the assistant
  content arrives word by word, every fragment with the same id and otid.
- 0.12.1 / 0.16.4 group stream: the same 500 as the plain group send; 0.16.8: no POST route (405).

Errors inside a stream (an `event: error`, a `{"error": ...}` data line, a stream cut off with no [DONE]) are
injected with `FakeLetta.fail_next(..., raw=b"data: ...", headers={"content-type": "text/event-stream"})`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from . import letta_groups as G
from . import letta_refusals as R
from . import letta_runs, letta_tools
from . import letta_shapes as S
from .letta_shapes import new_id, wire_date

if TYPE_CHECKING:
    from .letta import FakeLetta, Recorded

T = TypeVar("T")
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "server": "uvicorn"}


def _frame(data: Any) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def _ping(run_id: str | None) -> dict[str, Any]:
    return {
        "id": new_id("ping"),
        "date": wire_date(),
        "name": None,
        "message_type": "ping",
        "otid": None,
        "sender_id": None,
        "step_id": None,
        "is_err": None,
        "seq_id": None,
        "run_id": run_id,
    }


async def pinging(fake: FakeLetta, response: web.StreamResponse, run_id: str, work: Awaitable[T]) -> T:
    """Await the turn, writing a ping every `fake.ping_interval` seconds meanwhile, as 0.16.8 does while it waits on
    the model (20 s apart in 0.16.8/llmhang-agents-stream.json). A client gone stops the pings, not the turn."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=fake.ping_interval)
        if done:
            return task.result()
        try:
            await response.write(_frame(_ping(run_id)))
        except (ConnectionResetError, RuntimeError):
            return await task


def _fragments(message: dict[str, Any]) -> list[dict[str, Any]]:
    """0.16.8 token streaming: one event per word, each carrying the same id and otid."""
    words = re.findall(r"\S+\s*", message.get("content") or "") or [""]
    return [{**message, "content": word} for word in words]


async def agent_stream(
    fake: FakeLetta, request: web.Request, rec: Recorded, v: str, p: dict[str, str]
) -> web.StreamResponse:
    aid = p["agent_id"]
    msgs, bad = R.parse_send(v, rec.raw)
    if msgs is None:
        return fake._json(v, 422, bad)
    err = fake._agent_check(v, aid)
    if err is not None:
        return err
    shapes = fake._shapes(v)
    tokens = bool((rec.body or {}).get("stream_tokens"))
    run = letta_runs.start(fake, aid, "send_message_streaming")
    letta_runs.running(run)  # a streamed send's run is `running`, a plain one's stays `created` (section 19)
    try:
        response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **S.extra_headers(v)})
        await response.prepare(request)
        first = msgs[0] if msgs else {}
        managed = await fake._as_manager(v, aid, msgs, S.joined_text(msgs), first.get("otid"), first.get("name"))
        if managed is not None:
            out, steps = managed
        elif v == "0.16.8":
            await response.write(_frame(_ping(run.id)))
            out, steps = await pinging(fake, response, run.id, fake.agent_turn(v, aid, msgs, run))
        else:
            out, steps = await fake.agent_turn(v, aid, msgs, run)
    finally:
        letta_runs.end(run)
    if run.cancelled:
        return await cancelled_stream(response)
    await finish_turn_stream(fake, aid, response, shapes, out, steps, tokens and v == "0.16.8")
    return response


async def cancelled_stream(response: web.StreamResponse) -> web.StreamResponse:
    """A run cancelled while its model call ran: the reply is stored, the stream says only `cancelled`, and
    closes without [DONE] (0.16.8/agents-stream-cancelled.json)."""
    await response.write(_frame({"message_type": "stop_reason", "stop_reason": "cancelled"}))
    await response.write_eof()
    return response


async def finish_turn_stream(
    fake: FakeLetta,
    aid: str,
    response: web.StreamResponse,
    shapes: S.Shapes,
    out: list[dict[str, Any]],
    steps: int,
    tokens: bool,
) -> None:
    """An agent turn's messages (word by word with `tokens`), stop_reason, usage and [DONE], as 0.16.8 frames
    them on the agent stream and on the conversation route alike."""
    for message in copy.deepcopy(out):
        events = [message]
        if tokens and message["message_type"] == "assistant_message":
            events = _fragments(message)
        elif tokens and message["message_type"] == "tool_call_message":
            events = letta_tools.call_fragments(message)
        for position, event in enumerate(events):
            await response.write(_frame(event))
            if len(events) > 1 and position == 0:
                fake.first_tokens.append((aid, time.monotonic()))
            if len(events) > 1 and fake.token_delay:
                await asyncio.sleep(fake.token_delay)
    await response.write(_frame({"message_type": "stop_reason", "stop_reason": "end_turn"}))
    usage = {k: v2 for k, v2 in shapes.usage(steps).items() if k != "message_type"}
    await response.write(_frame({"message_type": "usage_statistics", **usage}))
    await response.write(_frame("[DONE]"))
    await response.write_eof()


async def group_stream(
    fake: FakeLetta, request: web.Request, rec: Recorded, v: str, p: dict[str, str]
) -> web.StreamResponse:
    gid = p["group_id"]
    if v in ("0.12.1", "0.16.4"):
        failed = S.capture(v, "groups-send-round_robin")["response"]
        return fake._json(v, failed["status"], failed["body"])
    msgs, bad = R.parse_send(v, rec.raw)
    if msgs is None:
        return fake._json(v, 422, bad)
    err = fake._group_check(v, gid)
    if err is not None:
        return err
    group = fake._group_spec(gid)
    text = S.joined_text(msgs)
    first = msgs[0] if msgs else {}
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **S.extra_headers(v)})
    await response.prepare(request)

    gone: list[bool] = []

    async def emit(messages: list[dict[str, Any]]) -> None:
        """A 0.11.7 group runs in a task of its own: a client that went away stops the stream, not the group."""
        for message in messages:
            if not gone:
                try:
                    await response.write(_frame(message))
                except (ConnectionResetError, RuntimeError):
                    gone.append(True)

    if group.manager_type == "round_robin":
        _, steps = await G.run_round_robin(
            fake, fake._shapes(v), group, msgs, text, first.get("otid"), first.get("name"), emit
        )
    else:
        runner = G.GROUP_RUNNERS[group.manager_type]
        out, steps = await runner(fake, fake._shapes(v), group, msgs, text, first.get("otid"), first.get("name"))
        await emit([{**m, "step_id": None, "run_id": None} for m in out])
    usage = {
        k: v2
        for k, v2 in fake._shapes(v).usage(steps).items()
        if k not in ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "context_tokens")
    }
    await emit([{"message_type": "usage_statistics", **usage}])
    await emit(["[DONE]"])  # type: ignore[list-item]
    if not gone:
        await response.write_eof()
    return response
