"""A press of the feedback buttons under an agent's reply: recorded once per person and reply (a change of mind
replaces the vote), counted in /metrics, and sent on to Letta as feedback on the step that wrote the reply where
the server takes it. Acknowledged at once; the store write runs before the ack returns (it is one small query) so
that a repeated press finds the first one recorded; Letta is told after the ack, in a task the bridge owns, one
reply's votes one after another in the order they were recorded (Letta keeps the last one it is sent)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bridge.keyed_locks import KeyedLocks
from bridge.metrics import Metrics
from bridge.slack.feedback import FEEDBACK_ACTION, Press, Vote, read_press
from bridge.store.base import Store
from bridge.store.feedback import Feedback, FeedbackStore
from bridge.tasks import Tasks

log = logging.getLogger(__name__)

# (team, the reply's Letta step, vote) -> whether the workspace's Letta server took it (False: it has no such route).
SendVote = Callable[[str, str, Vote], Awaitable[bool]]


@dataclass(frozen=True)
class Votes:
    """Where a recorded vote goes on to: the Letta side's sender, run in the bridge's own tasks."""

    send: SendVote
    tasks: Tasks


async def _step_id(store: Store, press: Press) -> str:
    """The Letta step that wrote the pressed reply, as the turn's journal kept it ("" when it named none)."""
    step, _, index = press.reply.rpartition(":")
    record = await store.get_step(press.turn_id, step) if index.isdigit() else None
    if record is None:
        return ""
    return next((r.step_id for r in record.replies if r.index == int(index) and r.agent_name == press.agent_name), "")


async def _tell_letta(store: Store, votes: Votes, team: str, press: Press, order: KeyedLocks) -> None:
    """Never shown to the person and never undoes the recorded vote: a failure is a log line. Sent while holding
    the reply's place in `order`: two sends in flight at once, Letta could apply the earlier vote last."""
    try:
        async with order.hold(f"{team}:{press.turn_id}:{press.reply}"):
            step_id = await _step_id(store, press)
            if step_id and await votes.send(team, step_id, press.vote):
                log.info("letta feedback sent step_id=%s vote=%s", step_id, press.vote)
    except Exception as exc:  # a Letta or store failure must not reach Bolt: the press is already answered
        log.warning("letta feedback not sent turn_id=%s reply=%s error=%s", press.turn_id, press.reply,
                    getattr(exc, "kind", type(exc).__name__))


def register(app: AsyncApp, store: Store, metrics: Metrics, votes: Votes | None = None) -> None:
    feedback = FeedbackStore(store)
    order = KeyedLocks()  # per reply: its votes reach Letta in the order they were recorded

    @app.action(FEEDBACK_ACTION)
    async def on_feedback(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        press = read_press(str(action.get("value") or ""))
        user = str((body.get("user") or {}).get("id", ""))
        team = str(context.team_id or (body.get("team") or {}).get("id") or "")
        if press is None or not user:
            log.info("slack feedback ignored: not a reply of this bridge value=%r", action.get("value"))
            return
        outcome = await feedback.record(Feedback(team, press.turn_id, press.reply, press.agent_name, user, press.vote))
        metrics.feedback(press.agent_name, press.vote, outcome)
        if votes is not None and outcome in ("new", "changed"):
            votes.tasks.spawn(_tell_letta(store, votes, team, press, order), "letta feedback", while_stopping=True)
        log.info(
            "slack feedback turn_id=%s reply=%s agent=%s user=%s vote=%s outcome=%s",
            press.turn_id,
            press.reply,
            press.agent_name,
            user,
            press.vote,
            outcome,
        )
