"""Build and sign requests the way Slack sends them to the bridge (Events API, slash commands, actions).

Slack signs the raw bytes it puts on the wire, so these helpers return ``bytes`` and the signing
helpers take exactly those bytes.  Formats follow reference/slack (http.md and the
events/, commands/, interactivity/ fixtures); the self-tests check byte-exact reproduction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote_plus, urlencode

DEFAULT_RESPONSE_URL = "https://hooks.slack.com/commands/T0123ABCD/8123456789012/aBcDeFgHiJkLmNoPqRsTuVwX"
DEFAULT_TRIGGER_ID = "8123456789013.1234567890123.0123456789abcdef0123456789abcdef"
VERIFICATION_TOKEN = "vErIfIcAtIoNtOkEn0123456"  # deprecated field Slack still puts into payloads
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"

_ts_lock = threading.Lock()
_last_ts_us = 0
_event_ids = itertools.count(1)


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return ``v0=<hex>``: HMAC-SHA256(secret, ``v0:{timestamp}:{raw body}``), as Slack computes it."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str,
    body: bytes,
    content_type: str,
    timestamp: int | None = None,
    retry_num: int | None = None,
) -> dict[str, str]:
    """Headers for one signed delivery (lower-case names, as Bolt sees them).

    ``timestamp`` defaults to now because Bolt rejects requests more than 300 s off the clock.
    ``retry_num`` adds the Events API retry headers (same body, fresh signature per attempt).
    """
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": slack_signature(secret, ts, body),
        "user-agent": USER_AGENT,
    }
    if retry_num is not None:
        headers["x-slack-retry-num"] = str(retry_num)
        headers["x-slack-retry-reason"] = "http_timeout"
    return headers


def slack_json(obj: Any) -> bytes:
    """Compact JSON with ``/`` escaped as ``\\/``: Slack's wire style, which byte-exact signatures need."""
    return json.dumps(obj, separators=(",", ":")).replace("/", "\\/").encode()


def next_ts() -> str:
    """A unique, increasing Slack ts (``"seconds.micros"``) taken from the wall clock."""
    global _last_ts_us
    with _ts_lock:
        now = max(int(time.time() * 1_000_000), _last_ts_us + 1)
        now += now % 2  # even micros; the fake server uses odd ones, so the two never collide
        _last_ts_us = now
    return f"{now // 1_000_000}.{now % 1_000_000:06d}"


def escape_mrkdwn(text: str) -> str:
    """Escape ``&``, ``<``, ``>`` (``&`` first) exactly as Slack does in incoming ``text``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _event_context(event_type: str, team_id: str, api_app_id: str, channel: str | None) -> str:
    """Opaque ``event_context`` shaped like the fixture's (``4-`` + base64 JSON)."""
    raw = json.dumps(
        {"et": event_type, "tid": team_id, "aid": api_app_id, "cid": channel}, separators=(",", ":")
    ).encode()
    return "4-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def event_body(
    event: dict[str, Any],
    event_id: str | None = None,
    team_id: str = "T0123ABCD",
    api_app_id: str = "A0123ABCD",
    bot_user_id: str = "U0BOTABCD",
) -> bytes:
    """An ``event_callback`` envelope like events/app_mention.json, as compact wire bytes.

    ``event_id`` defaults to a fresh unique id; pass the same one again to simulate a retry.
    """
    stamp = event.get("event_ts") or event.get("ts")
    envelope = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):04d}{uuid.uuid4().hex[:6].upper()}",
        "event_time": int(float(stamp)) if stamp else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": _event_context(str(event.get("type")), team_id, api_app_id, event.get("channel")),
    }
    return slack_json(envelope)


def mention_event(
    text: str,
    channel: str = "C0123ABCD",
    user: str = "U0123ABCD",
    ts: str | None = None,
    thread_ts: str | None = None,
    bot_user_id: str = "U0BOTABCD",
    parent_user_id: str | None = None,
    team: str = "T0123ABCD",
) -> dict[str, Any]:
    """An ``app_mention`` event like events/app_mention(_in_thread).json.

    ``text`` is the raw user text: ``text`` gets ``<@BOT> `` + escaped text, ``blocks`` keep raw chars.
    In a thread, ``parent_user_id`` defaults to ``user`` (the thread root's author).
    """
    ts = ts or next_ts()
    event: dict[str, Any] = {
        "user": user,
        "type": "app_mention",
        "ts": ts,
        "client_msg_id": str(uuid.uuid4()),
        "text": f"<@{bot_user_id}> {escape_mrkdwn(text)}",
        "team": team,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
        event["parent_user_id"] = parent_user_id or user
    event["blocks"] = [
        {
            "type": "rich_text",
            "block_id": uuid.uuid4().hex[:5],
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [
                        {"type": "user", "user_id": bot_user_id},
                        {"type": "text", "text": " " + text},
                    ],
                }
            ],
        }
    ]
    event["channel"] = channel
    event["event_ts"] = ts
    return event


def command_body(
    text: str,
    command: str = "/letta",
    channel_id: str = "C0123ABCD",
    user_id: str = "U0123ABCD",
    team_id: str = "T0123ABCD",
    response_url: str = DEFAULT_RESPONSE_URL,
    channel_name: str = "agents",
    user_name: str = "alice",
    trigger_id: str = DEFAULT_TRIGGER_ID,
    api_app_id: str = "A0123ABCD",
) -> bytes:
    """Slash-command form body, field order and encoding exactly like commands/slash_letta_connect.txt."""
    fields = [
        ("token", VERIFICATION_TOKEN),
        ("team_id", team_id),
        ("team_domain", "acme"),
        ("channel_id", channel_id),
        ("channel_name", channel_name),
        ("user_id", user_id),
        ("user_name", user_name),
        ("command", command),
        ("text", text),
        ("api_app_id", api_app_id),
        ("is_enterprise_install", "false"),
        ("response_url", response_url),
        ("trigger_id", trigger_id),
    ]
    return urlencode(fields).encode()


def action_body(payload: dict[str, Any]) -> bytes:
    """Interactivity form body: ``payload=`` + URL-encoded compact Slack JSON, exactly like the fixture."""
    return b"payload=" + quote_plus(slack_json(payload).decode()).encode()
