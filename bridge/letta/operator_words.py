"""A Letta failure in words for the person at the terminal (`check`, `init`, `channels`): what failed, the likely
cause and what to do there, in the terms of this host's settings. LettaError.explain words it for people in Slack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.letta.kinds import Kind

if TYPE_CHECKING:
    from bridge.letta.errors import LettaError

# Longer than this, a wait Letta asks for is said in minutes or hours.
MINUTE = 60.0


def operator_words(error: LettaError, what: str) -> str:
    """The failure for the person at the terminal: `LettaError.for_operator`."""
    url = error.base_url or "LETTA_BASE_URL"
    detail = f" ({error.detail})" if error.detail else ""
    match error.kind:
        case Kind.UNREACHABLE if error.redirected:
            return f"the Letta server at {url} is not reached there: {error.detail}"
        case Kind.UNREACHABLE if error.proxy:
            return (
                f"cannot reach the Letta server at {url} through the proxy{detail}: check the proxy variable that "
                "applies to it (HTTPS_PROXY, or HTTP_PROXY for an http:// server): its address, and user:password "
                "if the proxy asks for them (http://user:password@proxy:3128); or name the server's host in "
                "NO_PROXY if it is reached directly."
            )
        case Kind.UNREACHABLE if error.tls == "certificate":
            return (
                f"the Letta server at {url} answers, but its TLS certificate is not trusted on this host{detail} "
                "(self-signed, or signed by a private CA): put that CA's certificate in a file named by "
                "SSL_CERT_FILE, or give the server a certificate a public CA signed."
            )
        case Kind.UNREACHABLE if error.tls == "handshake":
            return (
                f"TLS with the Letta server at {url} failed{detail}: if it serves plain HTTP there, write "
                f"LETTA_BASE_URL with {plain_scheme(error.base_url)}; otherwise check its TLS setup."
            )
        case Kind.UNREACHABLE:
            return (
                f"cannot reach the Letta server at {url}{detail}: nothing answers there. Start the server, or "
                "set LETTA_BASE_URL to where it runs (Letta Cloud is https://api.letta.com)."
            )
        case Kind.TIMEOUT:
            return (
                f"the Letta server at {url} did not answer {what} in time{detail}: it may be overloaded, or a "
                "firewall drops the connection. Check that it is up and reachable from this host, then try again."
            )
        case Kind.DISCONNECTED:
            return (
                f"the connection to the Letta server at {url} dropped during {what}: it may have restarted "
                "(see its logs). Try again."
            )
        case Kind.UNAUTHORIZED if error.app_server:
            return (
                f"the Letta App Server at {url} rejected the API key (HTTP {error.status}): "
                f"{error.key_origin.where} is missing or wrong. Set it to the token in the file the server was "
                "started with (`letta server --ws-auth capability-token --ws-token-file FILE`)."
            )
        case Kind.UNAUTHORIZED:
            return (
                f"the Letta server at {url} rejected the API key (HTTP {error.status}): {error.key_origin.where} is "
                "missing, wrong or revoked. Set it to a key of this server (Letta Cloud > API keys; a self-hosted "
                "server: the password it was started with)."
            )
        case Kind.RATE_LIMITED:
            wait = duration(error.retry_after) if error.retry_after else "a minute"
            return (
                f"the Letta server at {url} is rate-limiting this key (HTTP 429){detail}. Wait {wait}, then try "
                "again."
            )
        case Kind.QUOTA:
            return (
                f"the Letta server at {url} refused {what} (HTTP {error.status}){detail}: the account's plan limit "
                "or credits are used up. Check the plan and usage of the account this key belongs to."
            )
        case Kind.NOT_FOUND | Kind.ROUTE_MISSING:
            return (
                f"the server at {url} has no route for {what} (HTTP {error.status}){detail}: "
                "check that LETTA_BASE_URL is the Letta server's address, without /v1 or another path."
            )
        case Kind.SERVER_ERROR:
            return (
                f"the Letta server at {url} failed on {what} (HTTP {error.status}{detail}). Its logs say why; "
                "try again once it is fixed."
            )
        case Kind.BAD_RESPONSE:
            return (
                f"the server at {url} answered {what} with something that is not Letta's{detail}: check that "
                "LETTA_BASE_URL is a Letta server."
            )
    status = f"HTTP {error.status}" if error.status else error.kind
    return f"the Letta server at {url} refused {what} ({status}){detail}."


def duration(seconds: float | None) -> str:
    """A wait Letta asked for, in the words a person uses ("about 1 hour", "a few seconds")."""
    if not seconds or seconds < 10:
        return "a few seconds"
    if seconds < MINUTE:
        return f"{seconds:.0f} seconds"
    if seconds < 60 * MINUTE:
        minutes = round(seconds / MINUTE)
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / (60 * MINUTE))
    return f"about {hours} hour{'s' if hours != 1 else ''}"


def plain_scheme(base_url: str) -> str:
    """The scheme without TLS for the URL's own: ws:// for a wss:// App Server, else http://."""
    return "ws://" if (base_url or "").lower().startswith("wss:") else "http://"
