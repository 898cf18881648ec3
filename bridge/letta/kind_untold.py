"""The stand-in client of a workspace's own Letta server that did not answer when asked its kind (OAuth mode). A
REST client there would send an App Server, once it is back, routes it does not have, and every mention would fail
as 'Letta does not know ari (404: Not Found)'; this one sends nothing: each call fails at once with the failure the
kind's question met (Letta unreachable, in its usual words), and clients.LettaServers asks again at a use
at most every few seconds."""

from __future__ import annotations

import aiohttp

from bridge.letta.errors import KeyOrigin, LettaError
from bridge.letta.metered import MeteredLettaClient


class KindUntold(MeteredLettaClient):
    kind_guessed = True

    def __init__(self, base_url: str, why: LettaError, key_origin: KeyOrigin) -> None:
        super().__init__(base_url, key_origin=key_origin)
        self.why = why  # said in the log by clients.LettaServers, which keeps this stand-in

    def _http(self) -> aiohttp.ClientSession:
        """Every request, stream and probe fails here, before anything is sent."""
        why = self.why
        raise LettaError(why.kind, why.detail, status=why.status, base_url=self.base_url, key_origin=self.key_origin)

    def _retry_delay(self, error: LettaError, attempt: int, waited: float) -> float | None:
        """Not tried again: this client never reaches the server; a later use asks its kind again."""
        return None
