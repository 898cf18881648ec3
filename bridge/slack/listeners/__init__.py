"""One module per Slack surface, each with `register(app, ...)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp

from bridge.configure import Configurator
from bridge.relay import Relay
from bridge.slack.listeners import commands, events
from bridge.slack.listeners import workspaces as installs
from bridge.tasks import Tasks

if TYPE_CHECKING:
    from bridge.workspaces import Workspaces


def register_all(
    app: AsyncApp, relay: Relay, configurator: Configurator, tasks: Tasks, workspaces: Workspaces | None = None
) -> None:
    settings = configurator.settings
    events.register(
        app,
        relay,
        direct_messages=bool(settings.default_target),
        thread_follow_ups=settings.slack_thread_follow_ups,
    )
    if workspaces is None:
        commands.register(app, configurator, tasks)
        return
    setup = installs.register(app, workspaces)
    commands.register(app, configurator, tasks, workspaces.configurator, setup)
