"""A press of the feedback buttons under an agent's reply: recorded once per person and reply (a change of mind
replaces the vote), counted in /metrics. Acknowledged at once; the store write runs before the ack returns (it
is one small query) so that a repeated press finds the first one recorded."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bridge.metrics import Metrics
from bridge.slack.feedback import FEEDBACK_ACTION, read_press
from bridge.store.base import Store
from bridge.store.feedback import Feedback, FeedbackStore

log = logging.getLogger(__name__)


def register(app: AsyncApp, store: Store, metrics: Metrics) -> None:
    feedback = FeedbackStore(store)

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
        log.info(
            "slack feedback turn_id=%s reply=%s agent=%s user=%s vote=%s outcome=%s",
            press.turn_id,
            press.reply,
            press.agent_name,
            user,
            press.vote,
            outcome,
        )
