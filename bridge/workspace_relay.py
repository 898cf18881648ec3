"""OAuth mode: the one relay's faces over many workspaces. `WorkspaceWorkers` runs each turn with its workspace's
worker (a workspace's first turn builds it), `WorkspaceThreads` asks whether a binding's threads run at once of
that worker, and `WorkspaceRelay` says a queued turn with its workspace's poster."""

from __future__ import annotations

from bridge.relay import Relay
from bridge.slack.failures import SlackAnswer
from bridge.slack.post import SlackPoster
from bridge.threads import ThreadPolicy
from bridge.turns import Job, TurnWorker
from bridge.workspaces import WorkspaceGone, Workspaces


class WorkspaceThreads(ThreadPolicy):
    """Whether a binding's threads run at once, asked of its workspace's server."""

    def __init__(self, workspaces: Workspaces) -> None:  # no ThreadPolicy state of its own
        self._workspaces = workspaces

    async def in_parallel(self, team_id: str, channel_id: str) -> bool:
        try:
            kit = await self._workspaces.kit(team_id)
        except WorkspaceGone:
            return False
        return await kit.worker.threads.in_parallel(team_id, channel_id)


class WorkspaceWorkers(TurnWorker):
    """The relay's worker in OAuth mode: each turn runs with its workspace's own worker."""

    def __init__(self, workspaces: Workspaces) -> None:
        self._workspaces = workspaces
        self.threads = WorkspaceThreads(workspaces)

    def expect(self, job: Job) -> None:
        """Its workspace's worker asks ahead, once it has one (a workspace's first turn builds it as it runs)."""
        kit = self._workspaces.served(job.turn.team_id)
        if kit is not None:
            kit.worker.expect(job)

    async def slack_answers(self, team_id: str) -> SlackAnswer:
        """The workspace's own Slack client asks; one no longer served is for its run to find out."""
        kit = self._workspaces.served(team_id)
        return "answers" if kit is None else await kit.worker.slack_answers(team_id)

    async def run(self, job: Job) -> str:
        return await self._workspaces.run(job)


class WorkspaceRelay(Relay):
    """The relay with each queued turn's notice said by its workspace's poster."""

    workspaces: Workspaces

    async def _poster_of(self, team_id: str) -> SlackPoster:
        return (await self.workspaces.kit(team_id)).poster
