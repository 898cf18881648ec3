"""The Letta client with every call timed and every failure counted: metering lives beside the client it meters."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bridge.letta.client import LettaClient
from bridge.letta.errors import LettaError
from bridge.letta.models import LettaMessage
from bridge.metrics import UNMETERED, Metrics


class MeteredLettaClient(LettaClient):
    """Times every Letta call and counts failures by kind."""

    metrics: Metrics = UNMETERED

    async def _request(
        self, method: str, path: str, params: Mapping[str, object] | None = None, json: object = None
    ) -> Any:
        started = time.monotonic()
        error: str | None = None
        try:
            return await super()._request(method, path, params, json)
        except LettaError as exc:
            error = str(exc.kind)
            raise
        finally:
            self.metrics.letta_call(method, path, time.monotonic() - started, error)

    async def _stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[LettaMessage]:
        started = time.monotonic()
        error: str | None = None
        try:
            async for item in super()._stream(path, body):
                yield item
        except LettaError as exc:
            error = str(exc.kind)
            raise
        finally:
            self.metrics.letta_call("POST", path, time.monotonic() - started, error)
