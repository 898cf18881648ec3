"""One module per Slack surface, each with `register(app, ...)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bridge.relay import Relay
from bridge.slack.listeners import events


def register_all(app: AsyncApp, relay: Relay) -> None:
    events.register(app, relay)
