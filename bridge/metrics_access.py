"""Who may read GET /metrics: with METRICS_TOKEN set, whoever sends it (`Authorization: Bearer`); without it, this
host's own clients only (loopback), and never a request a proxy on this host relays for someone else (its loopback
address is the proxy's, not the client's)."""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web
from pydantic import SecretStr

# Headers a proxy adds for the client it relays for (Heroku's, Render's and Fly's routers, nginx, Caddy).
RELAY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def metrics_refusal(request: web.Request, token: SecretStr | None, peer: str | None) -> web.Response | None:
    """The answer refusing the request (403 or 401), or None when it may read the page; `peer` is the client's
    address (the ingress says it in a header of its own)."""
    if token is None and (not _loopback(peer) or _relayed(request)):
        # Without METRICS_TOKEN the page is for this host only (a sidecar, a local scraper), not for whoever a
        # proxy on this host relays from loopback.
        refusal = {"error": "GET /metrics is served to this host's own clients only unless METRICS_TOKEN is set"}
        return web.json_response(refusal, status=403)
    if token is not None:
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        # The scheme's name is case-insensitive (RFC 9110 11.1): a scraper may send `bearer`.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.get_secret_value().encode()
        ):
            refusal = {"error": "GET /metrics needs Authorization: Bearer METRICS_TOKEN"}
            return web.json_response(refusal, status=401)
    return None


def _relayed(request: web.Request) -> bool:
    """Brought by a proxy on behalf of someone else: its loopback address is the proxy's, not the client's."""
    return any(name in request.headers for name in RELAY_HEADERS)


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
