"""What operators see in `GET /metrics` (Prometheus text format), in a registry each app owns.

The hooks are small on purpose: the relay counts events, duplicates, turns and queue depth; `turns.py` counts
messages posted; Letta and Slack calls are timed by thin subclasses of their clients that live beside them
(`letta/metered.py`, `letta/appserver/metered.py`, `slack/metered.py`) and count into this registry. This
module knows neither side.
"""

from __future__ import annotations

import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TURN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_IDS = re.compile(r"\b(agent|group|conv|message|run|step)-[0-9a-f-]{8,}")


def route(path: str) -> str:
    """A Letta path with its ids replaced, so that labels stay few: /v1/agents/{agent}/messages."""
    return _IDS.sub(lambda m: "{" + m.group(1) + "}", path.split("?", 1)[0])


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The process's memory, CPU and open files (a platform restarts one over its memory quota) and Python's
        # version, as every Prometheus client exports them by default.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.events = Counter(
            "bridge_events_received", "Mentions and messages the relay was offered, duplicates included", registry=r
        )
        self.duplicates = Counter(
            "bridge_events_duplicate",
            "Events dropped as already accepted: Slack retries, the message twin of a mention, or another process",
            registry=r,
        )
        self.turns = Counter("bridge_turns", "Turns ended, by outcome", ["outcome"], registry=r)
        self.turn_seconds = Histogram(
            "bridge_turn_duration_seconds", "From start to end of a turn's run", buckets=TURN_BUCKETS, registry=r
        )
        self.letta_seconds = Histogram(
            "bridge_letta_request_duration_seconds",
            "Letta calls, by method and route (HTTP routes; an App Server's WS requests by frame type, and turns)",
            ["method", "route"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.letta_errors = Counter("bridge_letta_errors", "Failed Letta calls, by kind", ["kind"], registry=r)
        self.slack_seconds = Histogram(
            "bridge_slack_request_duration_seconds",
            "Slack Web API calls, by method",
            ["method"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.slack_errors = Counter(
            "bridge_slack_errors", "Failed Slack calls, by method and error", ["method", "error"], registry=r
        )
        self.slack_rate_limited = Counter(
            "bridge_slack_rate_limited",
            "Slack calls refused for coming too fast (429, rate_limited), by method; waited out and made again",
            ["method"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "bridge_queue_depth",
            "Unfinished turns of a binding (team:channel), as last seen by this process",
            ["binding"],
            registry=r,
        )
        self.posted = Counter(
            "bridge_replies_posted",
            "Messages posted into threads: agent replies and bridge notices",
            ["kind"],
            registry=r,
        )

        self.feedback_votes = Counter(
            "bridge_feedback",
            "Feedback on agents' replies as recorded: a first vote, or a changed one, by agent and vote",
            ["agent", "vote", "change"],
            registry=r,
        )

    def expose(self) -> bytes:
        return generate_latest(self.registry)

    def event(self, duplicate: bool) -> None:
        self.events.inc()
        if duplicate:
            self.duplicates.inc()

    def turn_ended(self, outcome: str, seconds: float) -> None:
        self.turns.labels(outcome).inc()
        self.turn_seconds.observe(seconds)

    def turn_not_run(self, outcome: str) -> None:
        """A turn ended before it ran (`withdrawn`: its mention deleted; `stopped` while it waited): counted where
        the store's update ended it, without a duration."""
        self.turns.labels(outcome).inc()

    def depth(self, binding: str, count: int) -> None:
        """A binding's series exists only while it has unfinished turns: ids never pile up as labels."""
        if count > 0:
            self.queue_depth.labels(binding).set(count)
            return
        try:
            self.queue_depth.remove(binding)
        except KeyError:
            pass

    def reply_posted(self, agent_name: str | None) -> None:
        self.posted.labels("notice" if agent_name is None else "agent").inc()

    def feedback(self, agent_name: str, vote: str, outcome: str) -> None:
        """A press that was recorded (`new` or `changed`); a repeated press counts nothing."""
        if outcome in ("new", "changed"):
            self.feedback_votes.labels(agent_name, vote, outcome).inc()

    def letta_call(self, method: str, path: str, seconds: float, error: str | None) -> None:
        self.letta_seconds.labels(method, route(path)).observe(seconds)
        if error is not None:
            self.letta_errors.labels(error).inc()

    def rate_limited(self, method: str) -> None:
        self.slack_rate_limited.labels(method).inc()

    def slack_call(self, method: str, seconds: float, error: str | None) -> None:
        self.slack_seconds.labels(method).observe(seconds)
        if error is not None:
            self.slack_errors.labels(method, error).inc()


# What code outside the app counts into when nobody set a registry (the CLI, unit tests): never exposed.
UNMETERED = Metrics()
