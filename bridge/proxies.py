"""The proxy for each outgoing connection (Slack's Web API and Socket Mode, file downloads, Letta), from the
environment, one rule for all of them.

Behind a corporate proxy every connection must take it, or one part of the bridge works and another fails in
words that do not name the proxy (slack_sdk read HTTPS_PROXY but not NO_PROXY; file downloads and the App
Server's socket read neither). The rule is curl's and httpx's: the destination's scheme picks HTTPS_PROXY or
HTTP_PROXY (either case), then ALL_PROXY; an https destination falls back to HTTP_PROXY, as slack_sdk did, so a
deployment that set only that keeps working; NO_PROXY exempts hosts. A value without a scheme (`proxy:3128`) is
taken as http://, as curl takes it. The variables are checked once at start (`check_environment`) so that a
value the bridge cannot use stops it with the variable's name, not with an error on every call.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

from yarl import URL

# Read in this order by urllib for each scheme: the lower-case name wins, as in curl.
VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
SCHEMES = ("http", "https")  # what aiohttp can speak to a proxy
EXPECTED = "write it as http://host:port (or http://user:password@host:port)"


class ProxyError(ValueError):
    """A proxy variable the bridge cannot use; the message names the variable, never its password."""


def normal(name: str, value: str) -> str | None:
    """The proxy URL `value` stands for (None when blank); ProxyError when it cannot be used."""
    value = value.strip()
    if not value:
        return None
    if "://" not in value:
        value = "http://" + value
    scheme = value.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ProxyError(
            f"{name} names a {scheme}:// proxy, which the bridge cannot use: it reaches Slack and Letta through an "
            f"HTTP proxy only; {EXPECTED}."
        )
    try:
        url = URL(value)
        url.port  # noqa: B018 (a port that is not a number is found only when it is read)
    except (ValueError, TypeError):
        raise ProxyError(f"{name} is not a proxy address the bridge can use; {EXPECTED}.") from None
    if not url.host:
        raise ProxyError(f"{name} has no host; {EXPECTED}.")
    if any(c.isspace() for c in url.host):  # `not a url` reads as http://not a url: no host a connection can reach
        raise ProxyError(f"{name} has a space in its host; {EXPECTED}.")
    return str(url)


def check_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per proxy variable that is set but unusable (empty when all are fine)."""
    environ = os.environ if environ is None else environ
    problems = []
    for name in VARIABLES:
        if name in environ:
            try:
                normal(name, environ[name])
            except ProxyError as exc:
                problems.append(str(exc))
    return problems


def proxy_for(url: str) -> str | None:
    """The proxy a connection to `url` (http, https, ws or wss) goes through, or None for a direct one."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or urllib.request.proxy_bypass(host):
        return None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    proxies = urllib.request.getproxies_environment()
    order = [scheme, "all"] + (["http"] if scheme == "https" else [])
    for key in order:
        value = proxies.get(key)
        if value:
            found = normal(f"{key.upper()}_PROXY", value)
            if found:
                return found
    return None


def passwords(environ: Mapping[str, str] | None = None) -> list[str]:
    """The proxies' passwords, which must never reach a log line."""
    environ = os.environ if environ is None else environ
    found: list[str] = []
    for name in VARIABLES:
        try:
            value = normal(name, environ.get(name, ""))
        except ProxyError:
            continue
        url = URL(value) if value else None
        if url is not None and url.raw_password:
            found += {url.raw_password, url.password or url.raw_password}
    return found
