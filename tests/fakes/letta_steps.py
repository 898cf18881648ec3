"""The fake Letta's feedback route (0.16.8), played as captured (reference/letta/README.md, "Feedback on a step"):

- `PATCH /v1/steps/{step_id}/feedback` with `{"feedback": "positive"|"negative", "tags": [...]}` answers `200` with
  the Step, its `feedback` and `tags` as sent; a second call replaces the first (steps-feedback-positive.json,
  steps-feedback-negative.json);
- a step the fake never ran answers `404` with the captured detail (steps-feedback-unknown-step.json).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import letta_shapes as S

if TYPE_CHECKING:
    from .letta import FakeLetta, Handler, Recorded

V = "0.16.8"
_UNKNOWN = "step-00000000-0000-4000-8000-000000000000"


def routes(fake: FakeLetta) -> list[tuple[str, list[tuple[str, Handler]]]]:
    async def feedback(request: web.Request, rec: Recorded, v: str, p: dict[str, str]) -> web.Response:
        step_id = p["step_id"]
        body: dict[str, Any] = await request.json()
        if step_id not in fake.step_ids():
            detail = S.body(V, "steps-feedback-unknown-step")["detail"].replace(_UNKNOWN, step_id)
            return fake._json(v, 404, {"detail": detail})
        step = copy.deepcopy(S.body(V, "steps-feedback-positive"))
        step.update(id=step_id, feedback=body.get("feedback"), tags=body.get("tags") or [])
        with fake._lock:
            fake.step_feedback.append((step_id, body.get("feedback")))
        return fake._json(v, 200, step)

    return [(r"/v1/steps/(?P<step_id>[^/]+)/feedback", [("PATCH", feedback)])]
