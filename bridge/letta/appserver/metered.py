"""The App Server client with every request and every turn timed and every failure counted into metrics.py, as
`letta/metered.py` does for the REST client: metering lives beside the client it meters.

Labels: method `GET` for `/app-server-info`, `WS` for a socket request (route = its frame type: `agent_list`,
`conversation_create`, `input`, `abort_message`, ...) and for a whole turn (route `turn`, from the send to its
end; a turn that ended in an error counts that error's kind).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Sequence

from bridge.domain import Image
from bridge.letta.appserver import outgoing
from bridge.letta.appserver.client import A, AppServerClient, Written
from bridge.letta.appserver.probe import ServerInfo
from bridge.letta.appserver.turn import Finished, TurnEvent
from bridge.letta.errors import LettaError
from bridge.metrics import UNMETERED, Metrics


class MeteredAppServerClient(AppServerClient):
    metrics: Metrics = UNMETERED

    async def describe(self) -> ServerInfo:
        started, error = time.monotonic(), None
        try:
            return await super().describe()
        except LettaError as exc:
            error = str(exc.kind)
            raise
        finally:
            self.metrics.letta_call("GET", "/app-server-info", time.monotonic() - started, error)

    async def _ask(
        self, frame: outgoing.Sent, answer: type[A], within: float | None = None, written: Written | None = None
    ) -> A:
        started, error = time.monotonic(), None
        try:
            return await super()._ask(frame, answer, within, written)
        except LettaError as exc:
            error = str(exc.kind)
            raise
        finally:
            self.metrics.letta_call("WS", frame.type, time.monotonic() - started, error)

    async def send(
        self,
        agent_id: str,
        conversation_id: str,
        text: str,
        otid: str,
        deadline: float | None = None,
        tools: bool | None = None,
        images: Sequence[Image] = (),
    ) -> AsyncGenerator[TurnEvent, None]:
        started, error = time.monotonic(), None
        try:
            # Closed with this one, so that the turn's own clean-up (an abort when left unread) runs at once.
            sent = super().send(agent_id, conversation_id, text, otid, deadline, tools, images)
            async with contextlib.aclosing(sent) as events:
                async for event in events:
                    if isinstance(event, Finished) and event.error is not None:
                        error = str(event.error.kind)
                    yield event
        except LettaError as exc:
            error = str(exc.kind)
            raise
        finally:
            self.metrics.letta_call("WS", "turn", time.monotonic() - started, error)
