"""One module per Slack surface, each with `register(app, ...)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bridge.configure import Configurator
from bridge.relay import Relay
from bridge.slack.listeners import commands, events, sessions
from bridge.slack.permissions import Policy
from bridge.stopping import Stopping
from bridge.tasks import Tasks


def register_all(app: AsyncApp, relay: Relay, configurator: Configurator, tasks: Tasks) -> None:
    settings = configurator.settings
    worker = relay.worker
    policy = Policy(settings.slack_configure_by, frozenset(settings.slack_configure_users))
    stopping = Stopping(worker.store, worker.stops, settings.slack_stop_by)
    stops = sessions.StopHandler(stopping, worker.sessions, tasks, policy)
    events.register(
        app,
        relay,
        direct_messages=bool(settings.default_target),
        thread_follow_ups=settings.slack_thread_follow_ups,
        stops=stops,
    )
    sessions.register(app, stops)
    commands.register(app, configurator, tasks, stops)
