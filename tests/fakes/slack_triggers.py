"""Slack's trigger_ids, as the fake issues them for an interaction's payload: each lives 3 seconds, after which
views.open answers `expired_trigger_id` (reference/slack/web-api/views.open.json), so that a modal opened too late
fails here as it does in Slack. A trigger the fake did not issue (a capture's fixed one) has no known age and is
taken as before. Every trigger opens one modal: used again, it is answered `exchanged_trigger_id`, as Slack's is,
so that a views.open made twice for one press shows here."""

from __future__ import annotations

import itertools
import threading
import time

TRIGGER_SECONDS = 3.0


class SlackTriggers:
    """Mixed into FakeSlack, which provides _lock."""

    _lock: threading.RLock

    def _init_triggers(self) -> None:
        self._triggers: dict[str, float] = {}  # trigger_id -> when it was issued (time.monotonic)
        self._trigger_numbers = itertools.count(8123456789100)
        self._exchanged: set[str] = set()  # triggers that opened a modal

    def trigger_id(self) -> str:
        """A fresh trigger, shaped like the captures' (`<number>.<team number>.<hex>`), issued now."""
        with self._lock:
            trigger = f"{next(self._trigger_numbers)}.1234567890123.{time.monotonic_ns():032x}"
            self._triggers[trigger] = time.monotonic()
        return trigger

    def _trigger_expired(self, trigger: str) -> bool:
        with self._lock:
            issued = self._triggers.get(trigger)
        return issued is not None and time.monotonic() - issued > TRIGGER_SECONDS

    def _trigger_exchanged(self, trigger: str) -> bool:
        with self._lock:
            return trigger in self._exchanged

    def _exchange_trigger(self, trigger: str) -> None:
        """The trigger opened a modal: Slack takes it no more."""
        with self._lock:
            self._exchanged.add(trigger)
