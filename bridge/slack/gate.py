"""What must hold before a request reaches Bolt: a valid, fresh, first-seen signature and a body shaped like
Slack's.

Bolt verifies signatures too, but it answers a malformed body with a 500 (and Slack then retries it) and it
accepts the same signed request twice; the gate refuses both with the right status. A timestamp that is no
plain number (slack_sdk's `int()` would raise) is a 401; a body nested deeper than Slack ever nests, or whose
fields Bolt reads have the wrong JSON type (an `event` that is null, `actions` that are not a list of objects),
is a 400.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from slack_sdk.signature import SignatureVerifier

REPLAY_WINDOW = 300  # seconds, as Slack's own timestamp rule
MAX_DEPTH = 32  # Slack's payloads nest a dozen levels at most (Block Kit in a view in a payload)
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
# Where Slack's response_url points (commercial and GovSlack); the bridge posts answers nowhere else.
SLACK_HOOK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


# Records a signature until the given epoch time; False when it is already recorded (Store.first_signature).
FirstSeen = Callable[[str, float], Awaitable[bool]]


class Gate:
    """`check` is the signature, the timestamp and the body's shape; `first_time` the replay check, against the
    store (so a replay is refused after a restart, and by every process sharing a database)."""

    def __init__(self, signing_secret: str, first_seen: FirstSeen, response_hosts: Iterable[str] = ()) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._first_seen = first_seen
        self._response_hosts = frozenset(response_hosts)

    async def admit(self, headers: Mapping[str, str], body: bytes) -> Refusal | None:
        refusal = self.check(headers, body)
        if refusal is not None:
            return refusal
        timestamp = int(headers["x-slack-request-timestamp"])
        if not await self._first_seen(headers["x-slack-signature"], timestamp + REPLAY_WINDOW + 1):
            return Refusal(401, "replayed request")
        return None

    def check(self, headers: Mapping[str, str], body: bytes) -> Refusal | None:
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            return Refusal(401, "missing signature")
        if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
            return Refusal(401, "invalid signature or timestamp")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Refusal(400, "body is not UTF-8")
        if not self._verifier.is_valid(text, timestamp, signature):
            return Refusal(401, _why_invalid(int(timestamp)))
        if not well_formed(headers.get("content-type", ""), text):
            return Refusal(400, "malformed body")
        if not all(self._slacks(url) for url in response_urls(headers.get("content-type", ""), text)):
            return Refusal(400, "response_url is not Slack's")
        return None

    def _slacks(self, url: str) -> bool:
        """A response_url on Slack's own hosts (https), or on a host the settings allow (tests)."""
        try:
            parts = urlsplit(url)
            netloc = parts.netloc
        except ValueError:
            return False
        if "@" in netloc:
            return False
        if parts.scheme == "https" and parts.hostname in SLACK_HOOK_HOSTS and parts.port in (None, 443):
            return True
        return netloc in self._response_hosts

def _why_invalid(timestamp: int) -> str:
    """Which of a refused signature's causes it is, for the log line an operator reads: a fresh request signed
    with another secret is most often SLACK_SIGNING_SECRET set to something else than the app's."""
    if abs(time.time() - timestamp) > REPLAY_WINDOW:
        return "expired signature: the request is more than 5 minutes old (or this host's clock is off)"
    return (
        "signature does not match SLACK_SIGNING_SECRET: set it to the app's Signing Secret (Basic Information > "
        "App Credentials)"
    )


def response_urls(content_type: str, text: str) -> list[str]:
    """The response_url of a slash command or of an interactivity payload (the body is well formed)."""
    if content_type.startswith("application/json"):
        return []
    fields = parse_qs(text, keep_blank_values=True)
    urls = list(fields.get("response_url", []))
    if "payload" in fields:
        payload = json.loads(fields["payload"][0])
        urls += [payload["response_url"]] if isinstance(payload.get("response_url"), str) else []
    return urls


def well_formed(content_type: str, text: str) -> bool:
    """JSON bodies are one Events API object; form bodies are a slash command, an SSL check, or an
    interactivity `payload` that is one JSON object; each shaped as Bolt expects it (`shaped`)."""
    try:
        if content_type.startswith("application/json"):
            return _event_envelope(_json_object(text))
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
        if "payload" in fields:
            return _interaction(_json_object(fields["payload"][0]))
        if "ssl_check" in fields:
            return True
        command = fields.get("command", [""])
        return len(command) == 1 and command[0].startswith("/")
    except (ValueError, RecursionError):
        return False


def _json_object(text: str) -> dict[str, object]:
    value = json.loads(text)
    if not isinstance(value, dict) or _depth(value) > MAX_DEPTH:
        raise ValueError("not one JSON object of a sane depth")
    return value


def _depth(value: object) -> int:
    """How deep containers nest, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _is(value: object, kind: type | tuple[type, ...], optional: bool = True) -> bool:
    return (optional and value is None) or isinstance(value, kind)


def _fields(obj: dict[str, object], kind: type | tuple[type, ...], *names: str) -> bool:
    return all(_is(obj.get(name), kind) for name in names)


def _event_envelope(body: dict[str, object]) -> bool:
    if not isinstance(body.get("type"), str):
        return False
    if not _fields(body, str, "team_id", "api_app_id", "event_id", "enterprise_id", "token", "challenge"):
        return False
    authorizations = body.get("authorizations")
    if authorizations is not None and not (
        isinstance(authorizations, list) and all(isinstance(a, dict) for a in authorizations)
    ):
        return False
    if body["type"] == "url_verification":
        return isinstance(body.get("challenge"), str)
    if body["type"] != "event_callback" and "event" not in body:
        return True
    event = body.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return False
    if event["type"] in ("app_mention", "message"):
        names = ("user", "channel", "text", "ts", "thread_ts", "subtype", "bot_id", "channel_type", "team")
        return _fields(event, str, *names) and _fields(event, (str, dict), "event_ts")
    return True


def _interaction(payload: dict[str, object]) -> bool:
    kind = payload.get("type")
    if not isinstance(kind, str):
        return False
    if not _fields(payload, dict, "team", "channel", "enterprise"):  # Slack sends these as null at times
        return False
    if not all(
        isinstance(payload[name], dict) for name in ("user", "container", "view", "message", "state") if name in payload
    ):
        return False
    view = payload.get("view")
    if kind.startswith("view_") and not (
        isinstance(view, dict) and isinstance(view.get("type"), str) and _fields(view, str, "callback_id")
    ):
        return False  # Bolt reads a view's type whenever it has a callback_id
    if not _fields(payload, str, "response_url", "trigger_id", "api_app_id", "token", "callback_id"):
        return False
    user = payload.get("user")
    if isinstance(user, dict) and not isinstance(user.get("id"), str):
        return False
    if kind in ("block_actions", "interactive_message"):
        actions = payload.get("actions")
        return (
            isinstance(actions, list)
            and bool(actions)
            and all(
                isinstance(a, dict) and isinstance(a.get("action_id"), str) and _is(a.get("block_id"), str)
                for a in actions
            )
        )
    return True
