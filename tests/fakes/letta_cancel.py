"""The fake Letta's cancel routes (0.16.8), played as captured (reference/letta/README.md, "Cancel"):

- `POST /v1/agents/{id}/messages/cancel` and `POST /v1/conversations/{id}/cancel` answer `200 {"run-…":
  "cancelled"}` while a run is active (0.16.8/agents-cancel-during-*.json, conversations-cancel-during-stream.json),
  `409` with the captured detail when none is (agents-cancel-idle.json, conversations-cancel-idle.json);
- a cancel does not interrupt the model call in flight: the turn runs to its end and its reply is still stored;
- a stream whose run was cancelled then ends with `stop_reason: cancelled` and no [DONE], and no reply
  (agents-stream-cancelled.json, conversations-stream-cancelled.json); a non-streamed send answers as usual
  (agents-send-cancelled.json: 200, end_turn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import letta_shapes as S
from .letta_shapes import new_id

if TYPE_CHECKING:
    from .letta import FakeLetta, Handler, Recorded


def _idle(v: str, kind: str, ident: str) -> dict[str, Any]:
    body = S.body(v, f"{kind}-cancel-idle")
    body["detail"] = body["detail"].rsplit(" ", 1)[0] + " " + ident
    return body


def routes(fake: FakeLetta) -> list[tuple[str, list[tuple[str, Handler]]]]:
    async def agent(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        return _cancel(fake, v, "agents", p["agent_id"])

    async def conversation(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        return _cancel(fake, v, "conversations", p["conversation_id"])

    return [
        (r"/v1/agents/(?P<agent_id>[^/]+)/messages/cancel", [("POST", agent)]),
        (r"/v1/conversations/(?P<conversation_id>[^/]+)/cancel", [("POST", conversation)]),
    ]


def _cancel(fake: FakeLetta, v: str, kind: str, ident: str) -> web.Response:
    with fake._lock:
        running = [
            inp
            for inputs in fake._inflight.values()
            for inp in inputs
            if (inp.agent_id if kind == "agents" else inp.conversation) == ident and not inp.cancelled
        ]
        for inp in running:
            inp.cancelled = True
            inp.run_id = inp.run_id or new_id("run")
        fake.cancels.append((kind, ident, [inp.run_id or "" for inp in running]))
    if not running:
        return fake._json(v, 409, _idle(v, kind, ident))
    return fake._json(v, 200, {inp.run_id: "cancelled" for inp in running})
