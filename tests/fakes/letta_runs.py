"""The fake Letta's runs, as the real servers list and lock them (reference/letta/README.md sections 14 and 19).

- Every agent send (agent routes, conversation routes) is a run, listed as active while its step runs:
  0.11.7 `GET /v1/runs/active?agent_ids=<id>` (`runs-active-during-send`), 0.16.x
  `GET /v1/runs/?agent_id=<id>&conversation_id=<id>&active=true` (`runs-active-*`). A 0.11.7 group send is no run
  (`runs-active-during-group-send`: `[]`).
- 0.16.8 leaves a non-streamed conversation send's run `created` for ever, with `conversation_id: null`
  (`runs-active-default-during-send`): played as captured.
- With `FakeLetta(redis=True)` (0.16.8 with Redis, section 14): a streamed send to a conversation another run holds,
  and any send to the `default` thread while the agent's default thread is busy, get the captured 409 naming the
  running run; a background send (`background: true`) runs on after its request is gone, numbers its events with
  `seq_id`, and a same-otid background retry is attached to the first run (`concurrent-redis-conversations-same-otid-
  background`), even once that run has ended (`redis-conversations-same-otid-background-after-finish`: the finished
  run's events again, no second turn); `POST /v1/conversations/{id}/stream` re-attaches (`{}`: the active
  background run; `otid` or `run_id`: that run, finished or not; `starting_after`), answering 400 with nothing
  active and 404 for an unknown otid or run id (`redis-conversations-stream-resume-unknown-run-id`).
  Without Redis that route answers 503 (`conversations-stream-resume-without-redis`).
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import letta_shapes as S
from .letta_shapes import new_id

if TYPE_CHECKING:
    from .letta import FakeLetta, Handler, Recorded

ACTIVE = ("created", "running")
UNKNOWN_RUN_ID = "run-00000000-0000-4000-8000-000000000000"  # the id the unknown-run capture asked for


@dataclass
class Run:
    id: str
    agent_id: str
    conversation: str | None  # as the run lists it (None on the agent routes and the default thread)
    lock: str | None  # what a Redis server locks while it runs: the conversation id, or the agent id for `default`
    otid: str | None
    background: bool
    run_type: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "created"
    events: list[Any] = field(default_factory=list)  # a background run's frames, in order
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False  # a cancel reached it while its model call ran (letta_cancel.py)
    leaked: bool = False  # its send answered, and 0.16.8 still lists it `created` (see `end`)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def add(self, event: Any) -> None:
        if isinstance(event, dict) and "seq_id" in event:
            event = {**event, "seq_id": 1 + sum(1 for e in self.events if isinstance(e, dict) and e.get("seq_id"))}
        self.events.append(event)
        self.changed.set()
        self.changed = asyncio.Event()


def start(fake: FakeLetta, agent_id: str, run_type: str, *, conversation: str | None = None, lock: str | None = None,
          otid: str | None = None, background: bool = False) -> Run:
    run = Run(new_id("run"), agent_id, conversation, lock, otid, background, run_type)
    with fake._lock:
        fake._runs[run.id] = run
    return run


def running(run: Run) -> None:
    run.status = "running" if run.status == "created" else run.status


def end(run: Run, status: str = "completed", leak: bool = False) -> None:
    """The run is over (its lock is released); `leak` plays 0.16.8's non-streamed conversation send, whose run
    stays `created`."""
    run.lock = None
    if leak:
        run.status, run.conversation, run.leaked = "created", None, True
        return
    run.status = status
    run.changed.set()


def holder(fake: FakeLetta, lock: str) -> Run | None:
    with fake._lock:
        return next((r for r in fake._runs.values() if r.lock == lock), None)


def by_otid(fake: FakeLetta, otid: str) -> Run | None:
    with fake._lock:
        return next((r for r in fake._runs.values() if r.otid == otid and r.background), None)


def wire(version: str, run: Run) -> dict[str, Any]:
    """A run as the version lists it, in the captured key order."""
    template: dict[str, Any] = copy.deepcopy(S.body(version, "runs-active-during-send")[0])
    if S.is_v16(version):
        values = {"id": run.id, "status": run.status, "created_at": run.created.isoformat().replace("+00:00", "Z"),
                  "agent_id": run.agent_id, "conversation_id": run.conversation, "background": run.background,
                  "metadata": {"run_type": run.run_type}, "completed_at": None, "stop_reason": None}
    else:
        values = {"id": run.id, "status": run.status, "created_at": run.created.isoformat().replace("+00:00", ""),
                  "metadata": {"job_type": run.run_type, "agent_id": run.agent_id}}
    return {key: values.get(key, value) for key, value in template.items()}


def routes(fake: FakeLetta, version: str) -> list[tuple[str, list[tuple[str, Handler]]]]:
    async def active(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        wanted = set(request.query.getall("agent_ids", []))
        with fake._lock:
            runs = [r for r in fake._runs.values() if r.active and (not wanted or r.agent_id in wanted)]
        return fake._json(v, 200, [wire(v, r) for r in runs])

    async def listing(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        q = request.query
        with fake._lock:
            runs = sorted(fake._runs.values(), key=lambda r: r.created, reverse=True)
        if "agent_id" in q:
            runs = [r for r in runs if r.agent_id == q["agent_id"]]
        if "conversation_id" in q:
            runs = [r for r in runs if r.conversation == q["conversation_id"]]
        if q.get("active") == "true":
            runs = [r for r in runs if r.active]
        return fake._json(v, 200, [wire(v, r) for r in runs[: S.to_int(q.get("limit"), 100)]])

    async def resume(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.StreamResponse:
        return await _resume(fake, request, rec, v, p["conv_id"])

    if not S.is_v16(version):
        return [(r"/v1/runs/active", [("GET", active)])]
    out: list[tuple[str, list[tuple[str, Handler]]]] = [(r"/v1/runs/", [("GET", listing)])]
    if version == "0.16.8":
        out.append((r"/v1/conversations/(?P<conv_id>[^/]+)/stream", [("POST", resume)]))
    return out


async def follow(fake: FakeLetta, request: web.Request, v: str, run: Run, after: int | None) -> web.StreamResponse:
    """Stream a background run's events from the start (or after `seq_id` `after`) until it ends; the run goes on
    if this request goes away."""
    from .letta_stream import SSE_HEADERS, _frame

    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **S.extra_headers(v)})
    await response.prepare(request)
    sent = 0
    while True:
        changed = run.changed
        for event in run.events[sent:]:
            seq = event.get("seq_id") if isinstance(event, dict) else None
            if after is None or seq is None or seq > after:
                await response.write(_frame(event))
        sent = len(run.events)
        if run.events and run.events[-1] == "[DONE]":
            break
        if not run.active and sent == len(run.events):
            break
        await changed.wait()
    await response.write_eof()
    return response


async def _resume(fake: FakeLetta, request: web.Request, rec: Recorded, v: str, conv_id: str) -> web.StreamResponse:
    if not fake.redis:
        exchange = S.capture(v, "conversations-stream-resume-without-redis")["response"]
        return fake._json(v, exchange["status"], exchange["body"])
    body = rec.body if isinstance(rec.body, dict) else {}
    run: Run | None = None
    if body.get("run_id"):
        with fake._lock:
            run = fake._runs.get(body["run_id"])
        if run is None:  # redis-conversations-stream-resume-unknown-run-id.json
            unknown = S.body(v, "redis-conversations-stream-resume-unknown-run-id")
            return fake._json(v, 404, {"detail": unknown["detail"].replace(UNKNOWN_RUN_ID, body["run_id"])})
    elif body.get("otid"):
        run = by_otid(fake, body["otid"])
        if run is None:
            unknown = S.body(v, "redis-conversations-stream-resume-unknown-otid")
            old = unknown["detail"].split("otid=", 1)[1].split(".", 1)[0]
            return fake._json(v, 404, {"detail": unknown["detail"].replace(old, body["otid"])})
    else:
        lock = body.get("agent_id") if conv_id == "default" else conv_id
        with fake._lock:
            candidates = [r for r in fake._runs.values() if r.lock is not None and r.lock == lock]
        if candidates and candidates[-1].background:
            run = candidates[-1]
    if run is None:
        return fake._json(v, 400, S.body(v, "redis-conversations-stream-resume-idle"))
    after = body.get("starting_after")
    return await follow(fake, request, v, run, int(after) if after is not None else None)
