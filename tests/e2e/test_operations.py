"""What operators see, after a scripted run on Postgres: GET /metrics, GET /readyz while the database goes away
and comes back, and JSON log lines (one per event and per turn, with their fields, and no secret or message
text unless DEBUG is asked for)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import postgres_env
from tests.e2e.harness import BOT_TOKEN, SIGNING_SECRET, BridgeProcess, base_env, run_cli
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event
from tests.fakes.slack import FakeSlack
from tests.pg import PgServer

CHANNEL, UNBOUND = "C0OPS0001", "C0OPS0002"
LETTA_KEY, METRICS_TOKEN, DB_PASSWORD = "letta-key-ops-31337", "metrics-token-ops-4242", "dbpass-ops-777"
MARKER = "the launch codes are XYZZY-1138"


def scrape(bridge: BridgeProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{bridge.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def test_metrics_readiness_and_json_logs_after_a_scripted_run(pg_server: PgServer, tmp_path: Path) -> None:
    database = pg_server.create_database()
    parts = urlsplit(database)
    with_password = parts._replace(netloc=f"bridge:{DB_PASSWORD}@{parts.hostname}:{parts.port}").geturl()
    with FakeSlack() as slack, FakeLetta(version="0.16.8", api_key=LETTA_KEY) as letta:
        alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
        group = letta.add_group([alice, bob])
        env = base_env(
            slack.api_url, letta.base_url, tmp_path / "unused.db", **postgres_env(with_password),
            LETTA_API_KEY=LETTA_KEY, LOG_FORMAT="json", METRICS_TOKEN=METRICS_TOKEN,
        )
        assert run_cli(env, "channels", "connect", CHANNEL, group).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            # The script: a mention whose first agent fails (partial), delivered twice; a clean one; an unbound one.
            letta.fail_next("POST", rf"/v1/agents/{alice}/messages(/stream)?", 500, {"detail": "boom"})
            first = mention_event(f"first {MARKER}", channel=CHANNEL)
            body = event_body(first)
            assert bridge.post(body).status_code == 200
            assert bridge.post(body, timestamp=int(time.time()) + 1, **{"X-Slack-Retry-Num": "1"}).status_code == 200
            second, _ = bridge.mention(f"second {MARKER}", CHANNEL)
            lonely, _ = bridge.mention(f"anyone? {MARKER}", UNBOUND)
            for channel, event in ((CHANNEL, first), (CHANNEL, second)):
                slack.wait_for(lambda c=channel, e=event: bool({"white_check_mark", "warning"}
                                                               & slack.reactions(c, e["ts"])), 15)
            slack.wait_for(lambda: len(slack.posts(UNBOUND, lonely["ts"])) == 1, 15)

            assert httpx.get(f"{bridge.url}/metrics").status_code == 401, "the token is required once set"
            metrics = scrape(bridge)
            assert value(metrics, "bridge_events_received_total") == 4
            assert value(metrics, "bridge_events_duplicate_total") == 1
            assert value(metrics, "bridge_turns_total", outcome="partial") == 1
            assert value(metrics, "bridge_turns_total", outcome="done") == 1
            assert value(metrics, "bridge_turns_total", outcome="unbound") == 1
            assert value(metrics, "bridge_turn_duration_seconds_count") == 3
            sends = value(metrics, "bridge_letta_request_duration_seconds_count", method="POST",
                          route="/v1/conversations/default/messages")  # each agent's own thread
            assert sends == 4, "two turns, two agents each, the failed send included"
            assert value(metrics, "bridge_letta_errors_total", kind="server_error") == 1
            posted = len(slack.calls_to("chat.postMessage"))  # replies, notices, and a "Queued" line if one was due
            assert value(metrics, "bridge_slack_request_duration_seconds_count", method="chat.postMessage") == posted
            assert value(metrics, "bridge_slack_request_duration_seconds_count", method="reactions.add") >= 4
            assert value(metrics, "bridge_slack_errors_total", method="conversations.info",
                         error="channel_not_found") >= 1
            assert value(metrics, "bridge_replies_posted_total", kind="agent") == 3
            assert value(metrics, "bridge_replies_posted_total", kind="notice") == 2  # alice's failure, unbound
            assert value(metrics, "bridge_queue_depth", binding=f"T0123ABCD:{CHANNEL}") == 0

            # /readyz follows the database; /healthz stays cheap and green.
            assert httpx.get(f"{bridge.url}/readyz").json()["status"] == "ready"
            name = parts.path.lstrip("/")
            pg_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            pg_server.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname='{name}'")
            down = httpx.get(f"{bridge.url}/readyz", timeout=10)
            assert down.status_code == 503 and down.json()["status"] == "database unavailable"
            assert httpx.get(f"{bridge.url}/healthz").status_code == 200
            pg_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            deadline = time.monotonic() + 10
            while httpx.get(f"{bridge.url}/readyz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "readiness did not come back with the database"
                time.sleep(0.2)
            after, response = bridge.mention("back again", CHANNEL)
            assert response.status_code == 200
            slack.wait_for(lambda: "white_check_mark" in slack.reactions(CHANNEL, after["ts"]), 15)
        finally:
            assert bridge.stop() == 0

        lines = [json.loads(line) for line in bridge.logs().splitlines() if line.strip()]
        accepted = [line for line in lines if line["message"].startswith("event accepted")]
        ended = [line for line in lines if line["message"].startswith("turn ended")]
        assert len(accepted) == 4 and len(ended) == 4, "three scripted mentions and one after the outage"
        for line in accepted + ended:
            for key in ("event_id", "channel", "binding", "request_id", "duration_ms"):
                assert line.get(key) not in (None, ""), (key, line)
        assert sorted(line["status"] for line in ended) == ["done", "done", "partial", "unbound"]
        for line in ended:  # the one line a turn ends with says what it ran, too
            if line["status"] == "unbound":
                assert "replies" not in line
            else:
                assert line["runner"] and line["replies"] + line["failures"] == 2, line
        assert [line["failures"] for line in ended if line["status"] == "partial"] == [1]
        assert {line["event_id"] for line in accepted} == {line["event_id"] for line in ended}
        [dropped] = [line for line in lines if line["message"].startswith("duplicate event dropped")]
        assert dropped["event_id"] == accepted[0]["event_id"]
        letta_calls = [line for line in lines if line["message"].startswith(("letta call", "letta stream"))]
        assert letta_calls and all(line.get("turn_id") and line.get("binding") for line in letta_calls)
        text = bridge.logs()
        for secret in (BOT_TOKEN, SIGNING_SECRET, LETTA_KEY, METRICS_TOKEN, DB_PASSWORD, "XYZZY"):
            assert secret not in text, secret

        # Asked for, DEBUG logs the text of each accepted message (and still no secret).
        debug = BridgeProcess(dict(env, LOG_LEVEL="DEBUG")).start(tmp_path / "debug.log")
        try:
            event, _ = debug.mention(f"third {MARKER}", CHANNEL)
            slack.wait_for(lambda: "white_check_mark" in slack.reactions(CHANNEL, event["ts"]), 15)
        finally:
            debug.stop()
        assert "XYZZY" in debug.logs()
        for secret in (BOT_TOKEN, SIGNING_SECRET, LETTA_KEY, METRICS_TOKEN, DB_PASSWORD):
            assert secret not in debug.logs(), secret


def test_serve_on_sqlite_on_a_disk_the_host_wipes_says_so_in_its_log(tmp_path: Path) -> None:
    """A PaaS runs `serve`, never `check`: the warning that bindings go with every deploy was `check`'s only."""
    with FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp_path / "b.db", DYNO="web.1"))
        bridge.start(tmp_path / "bridge.log")
        try:
            assert "SQLite on Heroku (DYNO is set)" in bridge.logs()
        finally:
            bridge.stop()
