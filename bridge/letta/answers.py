"""What an HTTP answer from a Letta server, or a failure on the way to it, says: the answer read whole, the kind of
a failure on the wire (only one that certainly sent nothing may be retried), a redirect and a Retry-After in
words and seconds, and the one-off probe (`get_once`) the App Server's detection makes. Redirects are never
followed: the check of a URL reads paths under that URL only (docs/security.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from bridge.letta.errors import Kind, LettaError
from bridge.logs import shown_url
from bridge.proxies import proxy_for

# Connection failures that certainly sent nothing, then timeouts, then anything else on the wire.
UNSENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
TIMEOUTS = (aiohttp.ServerTimeoutError, TimeoutError)
WIRE_ERRORS = (aiohttp.ClientError, TimeoutError)


def wire_kind(exc: BaseException) -> Kind:
    """What a failure on the wire means for a send: only one that certainly sent nothing may be retried (a proxy
    that refused the tunnel, or could not be reached, sent nothing on)."""
    if isinstance(exc, (*UNSENT, aiohttp.ClientHttpProxyError)):
        return Kind.UNREACHABLE
    if isinstance(exc, TIMEOUTS):
        return Kind.TIMEOUT
    return Kind.DISCONNECTED


def wire_detail(exc: BaseException) -> str:
    """The failure's name, and for a proxy that refused the tunnel its status (407: it wants credentials)."""
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"{type(exc).__name__}: the proxy answered HTTP {exc.status}"
    return type(exc).__name__


@dataclass(frozen=True)
class Answer:
    """A response read whole: what `_error_for` and the callers of `_request` need of it."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def redirect_words(status: int, location: str) -> str:
    """A redirect in words: where it leads (its origin only, any user and password masked), to be set instead."""
    target = urlsplit(location)
    where = f"{target.scheme}://{target.netloc}" if target.scheme and target.netloc else "another address"
    return (
        f"it answers HTTP {status}, a redirect to {shown_url(where)}, which the bridge does not follow: set the URL"
        " Letta answers at"
    )


async def read_answer(response: aiohttp.ClientResponse) -> Answer:
    headers: CIMultiDictProxy[str] = response.headers
    return Answer(response.status, headers, await response.read(), response.reason or "")


def probe_timeout(within: float, connect: float | None = None) -> aiohttp.ClientTimeout:
    """`within` seconds in all; or, given `connect`, that long for the connection and `within` for the answer (a
    one-shot command's LETTA_LOOKUP_TIMEOUT, not a connection timeout spent waiting for a server that took it)."""
    if connect is None:
        return aiohttp.ClientTimeout(total=within)
    return aiohttp.ClientTimeout(total=connect + within, connect=connect, sock_read=within)


async def get_once(
    url: str, headers: Mapping[str, str], within: float, base_url: str, connect: float | None = None
) -> Answer:
    """One GET on a connection of its own, timed as `probe_timeout` says (a probe made once per start or command);
    a failure on the wire is a `LettaError` of the kind `_exchange` would give it."""
    try:
        async with (
            aiohttp.ClientSession(timeout=probe_timeout(within, connect)) as session,
            session.get(url, headers=headers, proxy=proxy_for(url), allow_redirects=False) as response,
        ):
            return await read_answer(response)
    except WIRE_ERRORS as exc:
        raise LettaError(wire_kind(exc), wire_detail(exc), base_url=base_url) from None


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number of them, or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
