"""The fake Letta's cancel routes, played as captured (reference/letta/README.md, "Cancel", and section 22):

- 0.16.8: `POST /v1/agents/{id}/messages/cancel` and `POST /v1/conversations/{id}/cancel` answer `200 {"run-…":
  "cancelled"}` while a run is active (0.16.8/agents-cancel-during-*.json, conversations-cancel-during-stream.json),
  `409` with the captured detail when none is (agents-cancel-idle.json, conversations-cancel-idle.json), and `404`
  for a conversation that does not exist (redis-conversations-cancel-unknown.json);
- the agent route cancels every active run of the agent, its conversations' too (redis-agents-cancel-during-
  background.json; Letta's `cancel_message` lists the agent's runs whatever their conversation), and a
  non-streamed conversation send's run that 0.16.8 leaves `created` after it answered
  (redis-agents-cancel-after-nonstream-conversation-send.json); given `{"run_ids": [...]}`, just those runs: each
  named `cancelled` (an ended one too: Letta's `cancel_run` is a no-op there), an unknown id `failed`
  (agents-cancel-unknown-run-id.json), never a 409;
- a cancel does not interrupt the model call in flight: the turn runs to its end and its reply is still stored
  (only then, section 19), yet its run is listed ended from the cancel on (runs-list-after-cancel.json: completed_at
  3 s after creation while its 12 s model call went on);
- a stream whose run was cancelled then ends with `stop_reason: cancelled` and no [DONE], and no reply
  (agents-stream-cancelled.json, conversations-stream-cancelled.json); a non-streamed send answers as usual
  (agents-send-cancelled.json: 200, end_turn);
- 0.11.7 has the agent route too, and cancels nothing: `200 {}` when idle, `200 {"run-…": "cancelled"}` naming
  the active run, which runs on and ends `end_turn` (0.11.7/agents-cancel-idle.json, agents-cancel-during-stream,
  agents-stream-cancelled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import letta_runs
from . import letta_shapes as S
from .letta_conversations import UNKNOWN_CONVERSATION_ID
from .letta_shapes import new_id

if TYPE_CHECKING:
    from .letta import FakeLetta, Handler, Recorded


def _idle(v: str, kind: str, ident: str) -> dict[str, Any]:
    body = S.body(v, f"{kind}-cancel-idle")
    body["detail"] = body["detail"].rsplit(" ", 1)[0] + " " + ident
    return body


def routes(fake: FakeLetta) -> list[tuple[str, list[tuple[str, Handler]]]]:
    async def agent(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        named = rec.body.get("run_ids") if isinstance(rec.body, dict) else None
        if named:
            return _cancel_named(fake, v, p["agent_id"], [str(r) for r in named])
        return _cancel(fake, v, "agents", p["agent_id"])

    async def conversation(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        return _cancel(fake, v, "conversations", p["conversation_id"])

    return [
        (r"/v1/agents/(?P<agent_id>[^/]+)/messages/cancel", [("POST", agent)]),
        (r"/v1/conversations/(?P<conversation_id>[^/]+)/cancel", [("POST", conversation)]),
    ]


def routes_0117(fake: FakeLetta) -> list[tuple[str, list[tuple[str, Handler]]]]:
    async def agent(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        with fake._lock:
            named = [r.id for r in fake._runs.values() if r.active and r.agent_id == p["agent_id"]]
            fake.cancels.append(("agents", p["agent_id"], []))  # nothing is cancelled: the runs go on
        return fake._json(v, 200, dict.fromkeys(named, "cancelled"))

    return [(r"/v1/agents/(?P<agent_id>[^/]+)/messages/cancel", [("POST", agent)])]


def _cancel(fake: FakeLetta, v: str, kind: str, ident: str) -> web.Response:
    if kind == "conversations":
        with fake._lock:
            known = ident in fake._conversations
        if not known:  # redis-conversations-cancel-unknown.json
            unknown = S.body(v, "redis-conversations-cancel-unknown")
            return fake._json(v, 404, {"detail": unknown["detail"].replace(UNKNOWN_CONVERSATION_ID, ident)})
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
            _listed_ended(fake, inp.run_id)
        taken = {inp.run_id for inp in running}
        # a run still listed active with no model call of its own (0.16.8 leaves a non-streamed conversation send's
        # run `created`): the agent route names and cancels it too
        leaked = [r for r in fake._runs.values() if kind == "agents" and r.agent_id == ident and r.active
                  and r.leaked and r.id not in taken]
        for run in leaked:
            letta_runs.end(run, "cancelled")
        ids = [inp.run_id or "" for inp in running] + [r.id for r in leaked]
        fake.cancels.append((kind, ident, ids))
    if not ids:
        return fake._json(v, 409, _idle(v, kind, ident))
    return fake._json(v, 200, dict.fromkeys(ids, "cancelled"))


def _cancel_named(fake: FakeLetta, v: str, agent_id: str, named: list[str]) -> web.Response:
    """The agent route given `run_ids`: those runs only (Letta's `cancel_message` then lists nothing itself)."""
    with fake._lock:
        answer = {run_id: "cancelled" if run_id in fake._runs else "failed" for run_id in named}
        for inputs in fake._inflight.values():
            for inp in inputs:
                if inp.run_id in named:
                    inp.cancelled = True
                    _listed_ended(fake, inp.run_id)
        for run_id in named:
            run = fake._runs.get(run_id)
            if run is not None and run.active and run.leaked:
                letta_runs.end(run, "cancelled")
        fake.cancels.append(("agents", agent_id, [r for r in named if answer[r] == "cancelled"]))
    return fake._json(v, 200, answer)


def _listed_ended(fake: FakeLetta, run_id: str) -> None:
    """A run whose model call a cancel reached is listed ended at once, though its step goes on and stores what it
    says when it ends (runs-list-after-cancel.json, section 16); a background run (Redis) keeps its own course."""
    run = fake._runs.get(run_id)
    if run is not None and run.active and not run.background:
        run.status = "cancelled"
