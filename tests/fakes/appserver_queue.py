"""The fake App Server's conversation queue and its abort, as a real server does them.

- `abort_message` stops the conversation's current turn: "Interrupted" and the answer at once, `cancelled` when
  the model call returns (captures ws-abort-*.json). The inputs queued behind it are parked (`paused: true`,
  capture ws-approval-pending-queue-abort-resume; observed 0.34.12 with a running turn too) until the next input
  (observed 0.34.12; the real server then ran the parked input and the new one as one batch, the fake one after
  the other).
- With `run_id` it stops only that run, and only once the model has begun to answer it (before that the run has
  no id on the server); otherwise `aborted: false` and nothing changes (observed 0.34.12, and in the server's
  source: `handleAbortMessageInput`). tests/real/test_appserver_real.py checks both on a real server.
- `remove_queue_item` takes a queued input out by its item id: `remove_queue_item_response {success, item_id}`
  (no runtime), the queue without it, then the queue with `removed: [{client_message_id, disposition:
  "cancelled"}]`; the input never runs. An id no longer queued answers `success: false` (observed 0.34.12,
  tests/real/test_appserver_real.py).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from tests.reference import APP_SERVER, load

if TYPE_CHECKING:
    from aiohttp import web

    from tests.fakes.appserver import Conv, FakeAppServer, Turn

Json = dict[str, Any]
_QUEUE: Json = next(
    f["json"]
    for f in load(APP_SERVER / "ws-busy-same-conversation-queued.json")["frames"]
    if f["dir"] == "received" and f["json"].get("type") == "update_queue"
)


async def show(fake: FakeAppServer, conv: Conv, runtime: Json, removed: list[Json] | None = None) -> None:
    """`update_queue`: every input still queued, and what just left (capture ws-busy-same-conversation-queued)."""
    queue = []
    for turn in conv.queue:
        item = copy.deepcopy(_QUEUE["queue"][0])
        item.update(id=turn.item_id, client_message_id=turn.cmid, content=turn.text, enqueued_at=turn.enqueued_at)
        if turn.paused:
            item["paused"] = True  # capture ws-approval-pending-queue-abort-resume.json
        queue.append(item)
    await fake._emit(conv, {**copy.deepcopy(_QUEUE), "queue": queue, "removed": removed or []}, runtime)


async def abort(fake: FakeAppServer, ws: web.WebSocketResponse, frame: Json, interrupted: Json, answer: Json) -> None:
    runtime = frame.get("runtime") or {}
    conv = fake.convs.get(runtime.get("conversation_id", ""))
    turn: Turn | None = conv.running if conv is not None else None
    run_id = frame.get("run_id")
    if turn is not None and run_id is not None and not (turn.streamed and turn.run_id == run_id):
        turn = None  # another run, or one with no id yet: refused, nothing changes
    if turn is not None and conv is not None:
        turn.aborted.set()
        await fake._emit(conv, interrupted, runtime)
        if conv.queue:
            for waiting in conv.queue:
                waiting.paused = True
            await show(fake, conv, runtime)
    await fake._send(ws, {**answer, "request_id": frame["request_id"], "runtime": runtime, "aborted": turn is not None})


async def remove(fake: FakeAppServer, ws: web.WebSocketResponse, frame: Json) -> None:
    runtime = frame.get("runtime") or {}
    conv = fake.convs.get(runtime.get("conversation_id", ""))
    item_id = frame.get("item_id")
    turn = next((t for t in conv.queue if t.item_id == item_id), None) if conv is not None else None
    answer = {"type": "remove_queue_item_response", "request_id": frame["request_id"], "success": turn is not None}
    await fake._send(ws, {**answer, "item_id": item_id})
    if turn is not None and conv is not None:
        conv.queue.remove(turn)
        await show(fake, conv, runtime)
        await show(fake, conv, runtime, [{"client_message_id": turn.cmid, "disposition": "cancelled"}])
