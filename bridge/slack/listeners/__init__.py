"""One module per Slack surface, each with `register(app, ...)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bridge.configure import Configurator
from bridge.relay import Relay
from bridge.slack.listeners import commands, events
from bridge.tasks import Tasks


def register_all(app: AsyncApp, relay: Relay, configurator: Configurator, tasks: Tasks) -> None:
    settings = configurator.settings
    events.register(
        app,
        relay,
        direct_messages=bool(settings.default_target),
        thread_follow_ups=settings.slack_thread_follow_ups,
    )
    commands.register(app, configurator, tasks)
