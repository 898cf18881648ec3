"""One module per Slack surface, each with `register(app, ...)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bridge.relay import Relay
from bridge.slack.listeners import commands, events
from bridge.store import Store


def register_all(app: AsyncApp, relay: Relay, store: Store) -> None:
    events.register(app, relay)
    commands.register(app, store)
