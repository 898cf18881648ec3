"""Slack's notices about its own event deliveries, which carry no inner event and which no listener handles.

`app_rate_limited` says Slack has started dropping a workspace's events (past 30,000 an hour): mentions sent in
that workspace until the hour ends never reach the bridge, which an admin can only learn from this notice. It is
answered 200 (Slack counts any other answer against the app's subscription) and said in the log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping


def rate_limited_words(headers: Mapping[str, str], body: bytes) -> str | None:
    """The log line for an `app_rate_limited` notice (a body the gate admitted), or None for anything else."""
    if b"app_rate_limited" not in body or not headers.get("content-type", "").startswith("application/json"):
        return None  # every other request, on the acknowledgement's path: not parsed a second time
    payload = json.loads(body)
    if not isinstance(payload, dict) or payload.get("type") != "app_rate_limited":
        return None
    minute = payload.get("minute_rate_limited")
    since = (
        time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(minute))
        if isinstance(minute, int) and not isinstance(minute, bool) and 0 <= minute < 2**33
        else "unknown"
    )
    team = payload.get("team_id")
    return (
        f"slack is dropping this app's event deliveries team={team if isinstance(team, str) else 'unknown'} "
        f"since={since}: past 30,000 events an hour from one workspace, Slack sends none until the hour ends, "
        "so mentions made meanwhile get no answer"
    )
