"""One module per Slack surface, each with `register(app, ...)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bridge.approval_desk import ApprovalDesk
from bridge.configure import Configurator
from bridge.letta.chooser import RunnerChooser
from bridge.relay import Relay
from bridge.slack.feedback import Vote
from bridge.slack.listeners import approvals, commands, events, feedback, sessions
from bridge.slack.listeners import workspaces as installs
from bridge.slack.permissions import Policy
from bridge.slack.sessions import Sessions
from bridge.stop_request import Stopping
from bridge.tasks import Tasks

if TYPE_CHECKING:
    from bridge.workspaces import Workspaces


def register_all(
    app: AsyncApp, relay: Relay, configurator: Configurator, tasks: Tasks, workspaces: Workspaces | None = None
) -> None:
    settings = configurator.settings
    worker = relay.worker
    policy = Policy(settings.slack_configure_by, frozenset(settings.slack_configure_users))
    if workspaces is None:
        stopping = Stopping(worker.store, worker.stops, settings.slack_stop_by, worker.metrics, relay.notices.stopped)
        stops = sessions.StopHandler(stopping, lambda _client: worker.sessions, tasks, policy)
    else:  # each workspace's turns run on its own worker, with its own Slack token and Letta server
        stopping = Stopping(
            workspaces.store, workspaces.stops, settings.slack_stop_by, workspaces.metrics, relay.notices.stopped
        )

        def sessions_of(client: AsyncWebClient) -> Sessions:
            return Sessions(client, settings.slack_sessions, settings.slack_stop_button)

        stops = sessions.StopHandler(stopping, sessions_of, tasks, policy)
    if settings.default_target:
        stops.prompts = settings.slack_suggested_prompts
    events.register(
        app,
        relay,
        direct_messages=bool(settings.default_target),
        thread_follow_ups=settings.slack_thread_follow_ups,
        stops=stops,
    )
    sessions.register(app, stops)
    if workspaces is None:
        feedback.register(app, worker.store, worker.metrics, feedback.Votes(_to_letta(worker.chooser), tasks))
        approvals.register(app, worker.desk, tasks, policy)
    else:  # a decision reaches the workspace's waiting turn through the store (TURN_STOP_POLL_SECONDS)
        votes = feedback.Votes(_to_workspace_letta(workspaces), tasks)
        feedback.register(app, workspaces.store, workspaces.metrics, votes)
        approvals.register(app, ApprovalDesk(workspaces.store, settings), tasks, policy)
    if workspaces is None:
        installs.register_single(app)
        commands.register(app, configurator, tasks, stops=stops)
        return
    setup = installs.register(app, workspaces, tasks)
    commands.register(app, configurator, tasks, workspaces.configurator, setup, stops=stops)



def _to_letta(chooser: RunnerChooser) -> feedback.SendVote:
    async def send(_team_id: str, step_id: str, vote: Vote) -> bool:
        return await chooser.step_feedback(step_id, vote)

    return send


def _to_workspace_letta(workspaces: Workspaces) -> feedback.SendVote:
    async def send(team_id: str, step_id: str, vote: Vote) -> bool:
        return await (await workspaces.kit(team_id)).chooser.step_feedback(step_id, vote)

    return send
