"""What must hold before a request reaches Bolt: a valid, fresh, first-seen signature and a parseable body.

Bolt verifies signatures too, but it answers a malformed body with a 500 (and Slack then retries it) and it
accepts the same signed request twice; the gate refuses both with the right status.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

REPLAY_WINDOW = 300  # seconds, as Slack's own timestamp rule


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


class Gate:
    def __init__(self, signing_secret: str) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check(self, headers: Mapping[str, str], body: bytes) -> Refusal | None:
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            return Refusal(401, "missing signature")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Refusal(400, "body is not UTF-8")
        if not self._verifier.is_valid(text, timestamp, signature):
            return Refusal(401, "invalid or expired signature")
        if not self._first_time(signature):
            return Refusal(401, "replayed request")
        if not well_formed(headers.get("content-type", ""), text):
            return Refusal(400, "malformed body")
        return None

    def _first_time(self, signature: str) -> bool:
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now - REPLAY_WINDOW:
            self._seen.popitem(last=False)
        if signature in self._seen:
            return False
        self._seen[signature] = now
        return True


def well_formed(content_type: str, text: str) -> bool:
    """JSON bodies are one object; form bodies parse, and an interactivity `payload` is one JSON object."""
    try:
        if content_type.startswith("application/json"):
            return isinstance(json.loads(text), dict)
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
        if "payload" in fields:
            return isinstance(json.loads(fields["payload"][0]), dict)
        return True
    except ValueError:
        return False
