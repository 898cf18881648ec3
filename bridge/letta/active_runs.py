"""The runs a Letta REST server lists as still going for an agent (or one conversation of it), created no
earlier than a send: what a send made then could be, looked at before a send under a key an earlier one may have
left running and after a send whose outcome is unknown. 0.11.x lists them at its own route."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.letta.errors import Kind, LettaError
from bridge.letta.models import Health
from bridge.letta.transport import LettaTransport

log = logging.getLogger(__name__)

DEFAULT_CONVERSATION = "default"  # with an agent_id: the agent's own thread, locked like a conversation (0.16.8)
RUNS_ROUTE_BELOW = (0, 12)  # servers below list active runs at /v1/runs/active?agent_ids=
CLOCK_SLACK = timedelta(seconds=30)  # between the bridge's clock and Letta's, when runs are compared to a send


class ActiveRuns(LettaTransport):
    """The active-run listing of `LettaClient`, whose `health` says which route the server has."""

    async def health(self) -> Health:
        raise NotImplementedError  # LettaClient's: GET /v1/health/

    async def _run_list(self, legacy: bool, agent_id: str, conversation_id: str | None) -> Any:
        if legacy:
            return await self._request("GET", "/v1/runs/active", params={"agent_ids": agent_id})
        params: dict[str, Any] = {"agent_id": agent_id, "active": "true", "limit": 100}
        if conversation_id not in (None, DEFAULT_CONVERSATION):
            params["conversation_id"] = conversation_id
        return await self._request("GET", "/v1/runs/", params=params)

    async def active_runs(
        self, agent_id: str, conversation_id: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The agent's runs that are still going (in `conversation_id`, or outside every conversation when None),
        created no earlier than `since` (less the clocks' slack): the ones a send made then could be.

        0.11.x lists them at `/v1/runs/active?agent_ids=`, later servers at `/v1/runs/?agent_id=&active=true`.
        """
        if self._legacy_runs is None:
            match = re.match(r"^v?(\d+)\.(\d+)", (await self.health()).version)
            self._legacy_runs = match is not None and (int(match[1]), int(match[2])) < RUNS_ROUTE_BELOW
        legacy = self._legacy_runs  # this call's route, whatever lists asked at once learn meanwhile
        try:
            payload = await self._run_list(legacy, agent_id, conversation_id)
        except LettaError as error:
            # Which route a release between the captured ones (0.11.7, 0.16.8) has is not known for sure: a route
            # the server lacks is no reason to fail a turn a person was promised, so the other one is tried.
            if error.kind != Kind.ROUTE_MISSING:
                raise
            legacy = not legacy
            log.info("letta run list route missing, trying the other one legacy=%s", legacy)
            payload = await self._run_list(legacy, agent_id, conversation_id)
            self._legacy_runs = legacy  # remembered once it answered
        if not isinstance(payload, list):
            raise LettaError(Kind.BAD_RESPONSE, "the run list is not a list", base_url=self.base_url)
        runs = [r for r in payload if isinstance(r, dict) and r.get("status") in ("created", "running")]
        if not legacy and conversation_id in (None, DEFAULT_CONVERSATION):
            runs = [r for r in runs if not r.get("conversation_id")]
        if since is not None:
            runs = [r for r in runs if (created(r) or since) >= since - CLOCK_SLACK]
        return runs


def created(run: dict[str, Any]) -> datetime | None:
    """When Letta says a run (or a conversation) was made, in UTC; None when it does not say readably."""
    try:
        when = datetime.fromisoformat(str(run.get("created_at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
