"""Settings errors in plain words: a URL setting that cannot work, pydantic's messages without its own
vocabulary, and a value a settings source could not parse, named by its variable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic_settings import SettingsError as SourceError

# pydantic-settings names a value it could not parse by its field and source only ("SourceError" below).
_UNPARSED = re.compile(r'field "(\w+)" from source "(\w+)"')
# Environment variables the settings read as JSON, as config.example.toml shows them.
JSON_EXAMPLES = {
    "slack_agents": """SLACK_AGENTS='{"alice": {"display_name": "Alice", "icon_emoji": ":owl:"}}' """
    "(each agent's Letta name, then any of display_name, icon_emoji and icon_url)",
}


def _masked(url: str) -> str:
    """`url` with whatever precedes its host's @ (a user and password) masked, scheme or not."""
    head, at, host = url.rpartition("@")
    if not at:
        return url
    scheme, sep, _ = head.partition("://")
    return f"{scheme}://***@{host}" if sep else f"***@{host}"


def url_problem(variable: str, url: str, schemes: tuple[str, ...]) -> str | None:
    """Why `url` cannot be `variable`'s, in one line that names it (None when it can). Without a scheme a client
    takes the host for one and later fails in words that blame the connection, not the setting."""
    shown = _masked(url)
    if not url:
        return f"{variable} is empty: write it as {schemes[0]}://host:port, or leave it out for its default"
    if "://" not in url:
        return f"{variable}={shown} has no scheme: write it as {schemes[0]}://{shown} (or {schemes[1]}://…)"
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes[:-1]) + f" or {schemes[-1]}://"
        return f"{variable}={shown} starts with {parts.scheme}://, which the bridge cannot use: start it with {allowed}"
    try:
        parts.port  # noqa: B018 (a port that is not a number is found only when it is read)
    except ValueError:
        return f"{variable}={shown} has a port that is not a number: write it as {schemes[0]}://host:port"
    if not parts.hostname:
        return f"{variable}={shown} has no host: write it as {schemes[0]}://host:port"
    return None


def plain_errors(exc: ValidationError) -> list[str]:
    """pydantic's errors as lines for the terminal: the variable, then why, without pydantic's own words
    ("Value error, ") or a location when the error is about the settings as a whole (a model validator's) or
    already names the variable."""
    lines = []
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]).upper()
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if name and not message.startswith(name) else message)
    return lines


def unparsed(exc: SourceError, path: Path | None) -> str:
    """A value a settings source could not parse, in one line that names it: a variable that is not JSON is the
    environment's doing, so the config file is blamed only for what its own source could not read."""
    found = _UNPARSED.search(str(exc))
    cause = exc.__cause__
    if found and found.group(2) == "EnvSettingsSource":
        name = found.group(1)
        if isinstance(cause, json.JSONDecodeError):
            like = JSON_EXAMPLES.get(name, "a JSON value")
            return f"{name.upper()} is not JSON ({cause}): write it as {like}"
        return f"{name.upper()} cannot be read from the environment: {cause or exc}"
    if path is not None:
        return f"could not read the config file {path}: {exc}"
    return f"could not read the settings: {exc}"


def two_credentials(url: str, api_key: str | None, variables: tuple[str, str]) -> str | None:
    """Why a Letta URL with a user and password and an API key cannot both be sent (None when they can): a request
    carries one Authorization header, and aiohttp refuses to choose."""
    if not api_key or not urlsplit(url).username:
        return None
    address, key = variables
    return (
        f"{address} carries a user and password, and {key} is set: a request to Letta carries only one of them. "
        f"Keep {key} for Letta's own key, or the URL's user:password@ only for a proxy that asks for it."
    )
