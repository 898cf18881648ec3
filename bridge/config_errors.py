"""Settings errors in plain words: a URL setting that cannot work, pydantic's messages without its own
vocabulary, and a value a settings source could not parse, named by its variable."""

from __future__ import annotations

import difflib
import json
import os
import re
import string
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError as SourceError

from bridge.letta.wire import is_agent_id, is_app_server_agent_id, is_group_id
from bridge.settings_words import Origin, sentence
from bridge.store.database_url import DatabaseUrlError, check_database_url

# pydantic-settings names a value it could not parse by its field and source only ("SourceError" below).
_UNPARSED = re.compile(r'field "(\w+)" from source "(\w+)"')
# Environment variables the settings read as JSON, as config.example.toml shows them.
JSON_EXAMPLES = {
    "slack_agents": """SLACK_AGENTS='{"alice": {"display_name": "Alice", "icon_emoji": ":owl:"}}' """
    "(each agent's Letta name, then any of display_name, icon_emoji and icon_url)",
}


def json_setting(name: str, value: object) -> object:
    """An environment variable's JSON, parsed here rather than by the settings source, so that a value that is not
    JSON is one more plain line among the others instead of the only one said."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        like = JSON_EXAMPLES.get(name, "a JSON value")
        raise ValueError(f"{name.upper()} is not JSON ({exc}): write it as {like}") from None


def _split(url: str) -> tuple[str, str, str]:
    """`url` as its scheme with `://` ("" for none), its authority (up to the first / ? or #) and the rest."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return scheme + sep, authority, rest[len(authority) :]


def _port_unread(url: str) -> bool:
    try:
        urlsplit(url).port  # noqa: B018 (a port that is not a number is found only when it is read)
    except ValueError:
        return True
    return False


def _masked(url: str) -> str:
    """`url` with a user and password masked, scheme or not: those before the host's @, or, where a raw / ? or # in
    the password cut the host's part short (the port then reads as no number), all up to the last @ after it. An @
    in the path of a URL that reads whole is left alone."""
    head, authority, tail = _split(url)
    if "@" in authority:
        return f"{head}***@{authority.rpartition('@')[2]}{tail}"
    if "@" in tail and (not head or _hostless(url)):
        # A URL whose scheme or host is mistyped (`http//user:pw@host`, `https:///user:pw@host`) has no host's part
        # to find the credentials in: all up to the last @ is masked.
        return f"{head}***@{tail.rpartition('@')[2]}"
    if "@" in tail and _port_unread(url):
        return f"{head}***@{tail.rpartition('@')[2]}"
    return url


def _hostless(url: str) -> bool:
    try:
        return not urlsplit(url).hostname
    except ValueError:
        return True


def _password_cut(url: str) -> bool:
    """Whether a raw / ? or # in a user's password is what cut the host's part short: an @ after it, followed by
    what reads as a host (a name with a dot, localhost, [an IPv6 address] or a host:port)."""
    _, authority, tail = _split(url)
    after = tail.rpartition("@")[2] if "@" not in authority and "@" in tail else ""
    host = re.match(r"(\[[^\]]*\]|[^/?#:@\s]+)(:\d+)?(?:[/?#]|$)", after)
    if host is None:
        return False
    name = host.group(1)
    return "." in name or name.lower() == "localhost" or name.startswith("[") or host.group(2) is not None


def url_problem(variable: str, url: str, schemes: tuple[str, ...]) -> str | None:
    """Why `url` cannot be `variable`'s, in one line that names it (None when it can). Without a scheme a client
    takes the host for one and later fails in words that blame the connection, not the setting."""
    shown = _masked(url)
    if not url:
        return f"{variable} is empty: write it as {schemes[0]}://host:port, or leave it out for its default"
    if "://" not in url:
        others = [f"{s}://…" for s in schemes[1:]]
        others = [", ".join(others[:-1]) + " or " + others[-1]] if len(others) > 1 else others
        return f"{variable}={shown} has no scheme: write it as {schemes[0]}://{shown} (or {others[0]})"
    try:
        parts = urlsplit(url)
    except ValueError:  # an IPv6 host's [ left open
        return f"{variable}={shown} has a [ with no ] after it: write an IPv6 host as {schemes[0]}://[::1]:port"
    if parts.scheme.lower() not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes[:-1]) + f" or {schemes[-1]}://"
        return f"{variable}={shown} starts with {parts.scheme}://, which the bridge cannot use: start it with {allowed}"
    encode = (
        f"{variable}={shown} has a user or password holding a space, /, ? or #: write them percent-encoded "
        "there (a space as %20, / as %2F, ? as %3F, # as %23)"
    )
    user, _, host = _split(url)[1].rpartition("@")
    if re.search(r"\s", user):  # shown as it is by anything that reads a URL's password up to a space
        return encode
    if re.search(r"\s", host):
        if _password_cut(url):  # the password's raw / ? or # ended the host's part before its space
            return encode
        return f"{variable}={shown} has a space in its host: write it as {schemes[0]}://host:port, with no space"
    if _port_unread(url):
        if _password_cut(url):  # a URL parser ended the host's part at the password's / ? or #
            return encode
        port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host.rpartition("]")[2] else ""
        if port.isdigit():
            return f"{variable}={shown} has port {port}, which is not a port (1 to 65535)"
        return f"{variable}={shown} has a port that is not a number: write it as {schemes[0]}://host:port"
    if not parts.hostname:
        return f"{variable}={shown} has no host: write it as {schemes[0]}://host:port"
    return None


def letta_path_problem(variable: str, url: str) -> str | None:
    """Why a Letta URL's path cannot work (None when it can): the bridge adds /v1 to every call, and with /v1 in
    the URL too every route is missing, which later reads as "no groups" or a refused key, not as the setting."""
    parts = urlsplit(url)
    if not parts.path.rstrip("/").lower().endswith("/v1"):
        return None
    server = _masked(f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')[:-3]}")
    return (
        f"{variable}={_masked(url)} ends in /v1, which the bridge adds to every call itself: "
        f"write {server} (the server's address, without /v1)"
    )


def default_target_problem(ids: tuple[str, ...]) -> str | None:
    """Why DEFAULT_TARGET cannot name anything (None when its ids have the forms Letta gives): checked with the
    settings, since a wrong one is found out only when a direct message comes, and then every one fails."""
    if not ids or (len(ids) == 1 and is_group_id(ids[0])):
        return None
    bad = [i for i in ids if not (is_agent_id(i) or is_app_server_agent_id(i))]
    if bad:
        return (
            f"DEFAULT_TARGET must be one group id (group-<uuid>) or agent ids in speaking order (agent-<uuid>, or "
            f"agent-local-<uuid> on a Letta App Server); got {', '.join(repr(i[:60]) for i in bad)}"
        )
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        return f"DEFAULT_TARGET lists {', '.join(twice)} twice; each agent can answer once per turn"
    return None


def pasted(field: str, value: object) -> object:
    """A token's or key's value as meant: blank is unset, and spaces or a line break pasted around it are not part
    of it (sent in a header, a trailing newline stopped every call with a traceback); one inside it is refused."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(
            f"{field.upper()} holds a line break or another control character inside it: set it to the value alone"
        )
    return value or None


def prefix_problem(prefix: str) -> str | None:
    """Why LETTA_CONTEXT_PREFIX cannot be formatted with a turn's {user} and {channel} (None when it can)."""
    allowed = "the prefix may hold {user} and {channel} (a brace of its own is written twice, {{ }})"
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(prefix) if name is not None]
    except ValueError:
        return f"its braces do not pair: {allowed}"
    unknown = next((name for name in fields if name not in ("user", "channel")), None)
    return None if unknown is None else f"{{{unknown}}} is no placeholder: {allowed}"



def letta_query_problem(variable: str, url: str) -> str | None:
    """Why a Letta URL with a query or a fragment cannot work (None when it has neither): every call appends its
    path to the URL, which after a `?` or `#` is no longer a path. The query is not said back: a key may be in it."""
    if "?" not in url and "#" not in url:
        return None
    parts = urlsplit(url)
    server = _masked(f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}")
    return (
        f"{variable} cannot have a query (?…) or a fragment (#…), since the bridge adds each call's path to it: "
        f"write {server} (the server's address only; its key goes in LETTA_API_KEY)"
    )


def plain_errors(exc: ValidationError, model: type[BaseModel], origin: Origin | None = None) -> list[str]:
    """pydantic's errors as one plain sentence per bad setting (settings_words.py words them by error type)."""
    return [sentence(err, model, origin or Origin(os.environ)) for err in exc.errors()]


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


def slack_credentials_problem(variable: str, url: str) -> str | None:
    """Why a Slack API URL with a user or password cannot be used (None when it has none): each request carries
    the bot token in its Authorization header, and aiohttp refuses a request that would also carry the URL's."""
    if "@" not in urlsplit(url).netloc:
        return None
    return (
        f"{variable}={_masked(url)} carries a user and password: a request to Slack carries the bot token in its "
        "Authorization header, and cannot carry them too. Remove the user:password@; a proxy that asks for a "
        "sign-in takes it in HTTPS_PROXY (http://user:password@proxy:3128)."
    )


def unknown_keys(path: Path, keys: dict[str, object], known: set[str]) -> list[str]:
    """A line for each key of the config file that is no setting: the model ignores them (the environment holds
    every variable of the machine), so a misspelt key would otherwise read as a setting left out."""
    lines = []
    for key, value in keys.items():
        if key.lower() in known:
            continue
        close = difflib.get_close_matches(key.lower(), known, n=1)
        if isinstance(value, dict):
            hint = "a table; settings are top-level keys, like port = 3000"
        else:
            hint = f"did you mean {close[0]}?" if close else "no setting has that name"
        lines.append(
            f"{path} has a key the bridge does not know: {key} ({hint}); every key is in config.example.toml."
        )
    return lines


def database_problem(url: object, files: bool = True) -> list[str]:
    """DATABASE_URL's scheme and driver, checked even when other settings are bad, so that all are said at once
    (a value that is no text at all has its own line already); `files`, also the certificate files it names."""
    if not isinstance(url, str):
        return []
    try:
        check_database_url(url.strip(), files=files)  # as Settings takes it
    except DatabaseUrlError as exc:
        return [str(exc)]
    return []
