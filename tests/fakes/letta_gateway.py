"""A gateway in front of the fake Letta (Cloudflare, Envoy, a load balancer) that forwards a request and then
answers an error of its own instead of Letta's answer: Cloudflare's 524 after the origin took too long, Envoy's 503
when the upstream connection was reset before its headers. Letta runs the send to its end all the same (a send
whose client went away is finished and stored, reference/letta/README.md section 19), so the turn is in history
while the client is told the gateway failed.

The hop is a real HTTP request to the fake itself, marked with `HOP`: it is not recorded as the client's request
and takes no injected failure. The gateway's bodies and headers are the test's (Envoy's local replies, Cloudflare's
`server: cloudflare` and `cf-ray`); Letta's part is the fake's, from the captures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from .letta import FakeLetta, _Rule

HOP = "x-fake-gateway-hop"
_DROPPED = {"host", "content-length", "transfer-encoding", "connection"}


async def forward_then_fail(fake: FakeLetta, request: web.Request, raw: bytes, rule: _Rule) -> web.Response:
    """Forward the request to Letta, read its whole answer (the run ends and is stored), then answer the rule's
    error instead."""
    headers: dict[str, Any] = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
    headers[HOP] = "1"
    async with aiohttp.ClientSession() as session, session.request(
        request.method, fake.base_url + request.path_qs, data=raw, headers=headers
    ) as upstream:
        await upstream.read()
    return web.Response(status=rule.status, body=rule.raw or b"", headers=rule.headers or {})
