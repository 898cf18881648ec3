"""A mention in a thread another app started (an alert, a CI result) gives the agents that post, labelled as the
app's; this app's own posts that are not agents' replies (notices) stay out (slack/directory.py `_app_post`)."""

from __future__ import annotations

from tests.e2e.conftest import World
from tests.e2e.test_mentions import thread_posts
from tests.e2e.test_threads import agent_inputs
from tests.fakes.signing import event_body, mention_event


def _as_apps_post(world: World, channel: str, ts: str, bot_id: str, username: str) -> None:
    """The message as Slack stores an app's post (reference/slack/events/message_bot.json)."""
    message = world.slack._find(channel, ts)
    assert message is not None
    message.pop("user"), message.pop("client_msg_id", None)
    message.update(subtype="bot_message", bot_id=bot_id, username=username)


def test_a_mention_under_another_apps_alert_gives_the_agents_the_alert(world: World) -> None:
    crew = world.bound_crew(("alice",))
    root_ts = world.slack.add_message(crew.channel, "ALERT: checkout-api 5xx rate 42% since 14:02 UTC")
    _as_apps_post(world, crew.channel, root_ts, "B0PAGERDUTY", "PagerDuty")
    notice_ts = world.slack.add_message(crew.channel, "Queued: I'll answer after 1 earlier message.", thread_ts=root_ts)
    _as_apps_post(world, crew.channel, notice_ts, world.slack.bot_id, "letta")  # this app's own notice
    mention = mention_event("what could cause this?", channel=crew.channel, thread_ts=root_ts)
    world.slack.add_message(crew.channel, mention["text"], ts=mention["ts"], thread_ts=root_ts)
    assert world.bridge.post(event_body(mention)).status_code == 200
    thread_posts(world, crew.channel, root_ts, 1)
    sent = agent_inputs(world, crew.agents["alice"])[-1]
    assert '{"person": "PagerDuty (app)", "text": "ALERT: checkout-api 5xx rate 42% since 14:02 UTC"}' in sent, sent
    assert "Queued" not in sent, sent
