"""One module per Slack surface, each with `register(app, ...)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bridge.configure import Configurator
from bridge.relay import Relay
from bridge.slack.listeners import commands, events
from bridge.tasks import Tasks


def register_all(app: AsyncApp, relay: Relay, configurator: Configurator, tasks: Tasks) -> None:
    events.register(app, relay, direct_messages=bool(configurator.settings.default_target))
    commands.register(app, configurator, tasks)
