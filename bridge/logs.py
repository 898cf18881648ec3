"""Structured log lines (text or JSON) with every known secret masked before anything is written.

Fields that belong to a whole piece of work (the turn's id, event id, channel and binding) are set once with
`log_context(...)` and added to every line logged inside it; a line can add its own with `extra={...}`. In JSON
each field is a key of its own; in text they follow the message as key=value.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

# Token shapes that must never be written, even when they are not this bridge's own: every xox?- kind (bot, user,
# a rotating token's xoxe- refresh token that OAuth mode keeps, a browser's xoxc-), app-level xapp- tokens, and
# Letta Cloud's API keys (`sk-let-`: a workspace's, typed into /letta setup after the logs were set up).
_TOKEN_SHAPES = re.compile(r"\b(xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-let-[A-Za-z0-9_+/=.-]+)")
# The user and password in any URL (http://user:password@host): never shown, whoever's they are. Up to the
# authority's last `@`, as URL parsers read it: a password may hold a raw `@` (`p@ss`).
_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s?#]*@")


# How the bridge's own advice writes a URL's credentials (`write it as postgres://user:password@host/db`): no one's
# secret, left as it is in a line (a setting's real password is on the redactor's list whatever it is).
_PLACEHOLDER = "://user:password@"


MASKED = "***@"  # a URL's user and password, as shown


def shown_url(url: str) -> str:
    """A URL as logs and Slack may show it: any user and password masked (`http://***@letta:8283`)."""
    return _URL_CREDENTIALS.sub(rf"\1{MASKED}", url)


# Secrets learnt after logging was set up (a workspace's own Letta key, OAuth mode), longest first. A tuple
# replaced whole: the ingress thread reads it while the main loop may add one.
_learnt: tuple[str, ...] = ()


def mask(secret: str) -> None:
    """Mask `secret` in every line from now on, as the settings' secrets are."""
    global _learnt
    if len(secret) >= 4 and secret not in _learnt:
        _learnt = tuple(sorted({*_learnt, secret}, key=len, reverse=True))


_context: ContextVar[dict[str, object]] = ContextVar("bridge_log_context", default={})  # noqa: B039 - never mutated
# Attributes every LogRecord has; anything else on a record is a field given by extra= or the context.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add `fields` to every line logged inside the block (and in tasks it starts)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def logged(name: str) -> object:
    """A field of the current log context (None when unset)."""
    return _context.get().get(name)


def fields_of(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class Throttled:
    """A warning that comes in bursts (requests refused at the door, from a scanner or a misconfigured app): said
    at most once every `every` seconds per key, the line carrying how many like it went unsaid since. Thread-safe
    (the ingress logs from a thread of its own)."""

    def __init__(self, logger: logging.Logger, every: float = 60.0) -> None:
        self._logger = logger
        self._every = every
        self._said: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            said = self._said.get(key)
            if said is not None and now - said < self._every:
                self._unsaid[key] = self._unsaid.get(key, 0) + 1
                return
            self._said[key] = now
            unsaid = self._unsaid.pop(key, 0)
        extra = {"more_since_last_line": unsaid} if unsaid else None
        self._logger.warning(message, *args, extra=extra, stacklevel=2)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            record.__dict__.setdefault(key, value)
        return True


class Redactor(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in (*self._secrets, *_learnt):
            text = text.replace(secret, "[redacted]")
        text = _TOKEN_SHAPES.sub("[redacted]", text)
        return _PLACEHOLDER.join(shown_url(part) for part in text.split(_PLACEHOLDER))

    def filter(self, record: logging.LogRecord) -> bool:
        message = self.redact(record.getMessage())
        record.msg, record.args = message, None
        for key, value in fields_of(record).items():
            if isinstance(value, str):
                setattr(record, key, self.redact(value))
            elif not isinstance(value, int | float | bool | type(None)):  # an object is written as its str()
                setattr(record, key, self.redact(str(value)))
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def masked(text: str) -> str:
    """`text` masked as the log handler masks a line, for what is written past logging (the `error: ...` line of
    text mode): before logging is set up, token shapes and URL credentials only."""
    found = [f for h in logging.getLogger().handlers for f in h.filters if isinstance(f, Redactor)]
    return (found[0] if found else Redactor([])).redact(text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(fields_of(record))
        if record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = [f"{k}={v}" for k, v in fields_of(record).items() if f"{k}=" not in record.getMessage()]
        return " ".join([text, *extra]) if extra else text


# Libraries whose lines below a level are never written, whatever LOG_LEVEL says: they echo request URLs and
# bodies, every SQL statement with its parameters (aiosqlite), each request's middleware chain (Bolt), each
# rule a reply's Markdown is parsed with (markdown-it).
QUIETER: dict[str, int] = {
    "slack_bolt": logging.WARNING,
    "slack_sdk": logging.WARNING,
    # slack_sdk tests this logger's own level (not the effective one) before it formats each request's and
    # response's debug text, headers and body included: left unset, every Web API call formatted both for nothing.
    "slack_sdk.web.async_base_client": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "markdown_it": logging.WARNING,  # each parsing rule entered, with the reply's text
    # asyncpg's pool logs a traceback each time it cannot reconnect; /readyz and the store's errors say it plainly.
    "asyncpg": logging.ERROR,
}


class Quieter(logging.Filter):
    """On the handler, not the loggers' levels: Bolt sets its app logger's level to the root's when the app is
    built, after logging was set up, so a level set on `slack_bolt` beforehand did not hold."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, least in QUIETER.items():
            if record.name == name or record.name.startswith(name + "."):
                return record.levelno >= least
        return True


def setup_logging(level: str, fmt: str, secrets: list[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Quieter())
    handler.addFilter(ContextFilter())
    handler.addFilter(Redactor(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    for name, least in QUIETER.items():  # not even made into records where the library leaves its level alone
        logging.getLogger(name).setLevel(least)
