"""What an operator running `serve` on a PaaS sees (a real SQLite file, settings from the environment): turn
outcomes in /metrics that an alert can be written on, and /metrics kept off the public side of a proxy."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import REPO, SIGNING_SECRET, BridgeProcess, base_env, run_cli
from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta
from tests.fakes.signing import event_body, mention_event, signed_headers
from tests.fakes.slack import FakeSlack

CHANNEL = "C0VIEW0001"


def outcomes(bridge: BridgeProcess) -> dict[str, float]:
    """bridge_turns_total by outcome (the page scraped from loopback, as a sidecar would)."""
    page = httpx.get(f"{bridge.url}/metrics", timeout=5)
    assert page.status_code == 200, page.text
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
        if sample.name == "bridge_turns_total"
    }


def test_a_turn_no_agent_answered_is_counted_failed_not_partial(fresh: tuple[FakeSlack, FakeLetta, Path]) -> None:
    """Letta failing every send must move bridge_turns_total{outcome="failed"}: an alert on it is how an operator
    learns that nobody is being answered. `partial` is for a turn some agent answered and another did not."""
    slack, letta, tmp = fresh
    alice, bob = letta.add_agent("alice"), letta.add_agent("bob")
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db")
    assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
    assert run_cli(env, "channels", "connect", "C0VIEW0002", alice, bob).returncode == 0
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        letta.fail_next("POST", r".*/messages.*", 500)
        lost, _ = bridge.mention("anyone there?", CHANNEL)
        slack.wait_for(lambda: "warning" in slack.reactions(CHANNEL, lost["ts"]), 15)
        letta.fail_next("POST", r".*/messages.*", 500)  # alice fails, bob answers
        half, _ = bridge.mention("and now?", "C0VIEW0002")
        slack.wait_for(lambda: "warning" in slack.reactions("C0VIEW0002", half["ts"]), 15)
        assert outcomes(bridge) == {"failed": 1.0, "partial": 1.0}
        ended = [line for line in bridge.logs().splitlines() if "turn ended" in line]
        assert [("status=failed" in line, "status=partial" in line) for line in ended] == [(True, False), (False, True)]
    finally:
        assert bridge.stop() == 0


PROXIED = (
    {"X-Forwarded-For": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9;proto=https"},
    {"X-Real-IP": "203.0.113.9"},
)


@pytest.mark.parametrize("inbox", ["true", "false"])
def test_metrics_without_a_token_are_not_served_to_what_a_proxy_on_this_host_relays(
    fresh: tuple[FakeSlack, FakeLetta, Path], inbox: str
) -> None:
    """Without METRICS_TOKEN /metrics is for this host only. A router or reverse proxy on the same host (nginx,
    Caddy, a platform's sidecar) connects from loopback on behalf of anyone on the internet, and says so in
    X-Forwarded-For / Forwarded / X-Real-IP: such a request is not this host's, whatever address it came from."""
    slack, letta, tmp = fresh
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", HTTP_EVENTS_INBOX=inbox)
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        assert httpx.get(f"{bridge.url}/metrics", timeout=5).status_code == 200, "a scraper on this host"
        for headers in PROXIED:
            relayed = httpx.get(f"{bridge.url}/metrics", headers=headers, timeout=5)
            assert relayed.status_code == 403 and "METRICS_TOKEN" in relayed.text, (headers, relayed.text)
            assert httpx.get(f"{bridge.url}/healthz", headers=headers, timeout=5).status_code == 200
    finally:
        assert bridge.stop() == 0


def test_readyz_says_not_ready_while_another_process_holds_the_sqlite_write_lock(
    fresh: tuple[FakeSlack, FakeLetta, Path],
) -> None:
    """An operator's `sqlite3 bridge.db` left in a transaction, or a backup tool's lock: no turn can be recorded
    (each write waits, then fails), so /readyz must not say ready; it is ready again once the lock goes."""
    slack, letta, tmp = fresh
    db = tmp / "bridge.db"
    bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, db)).start(tmp / "bridge.log")
    try:
        assert httpx.get(f"{bridge.url}/readyz", timeout=10).status_code == 200
        holder = sqlite3.connect(db, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            locked = httpx.get(f"{bridge.url}/readyz", timeout=10)
            assert (locked.status_code, locked.json()["status"]) == (503, "database unavailable"), locked.text
            assert httpx.get(f"{bridge.url}/healthz", timeout=5).status_code == 200, "alive, only not ready"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert httpx.get(f"{bridge.url}/readyz", timeout=10).status_code == 200
        assert "database is locked" in bridge.logs()
    finally:
        assert bridge.stop() == 0


def test_readiness_probes_during_an_outage_log_its_start_and_end_not_every_probe(
    fresh: tuple[FakeSlack, FakeLetta, Path],
) -> None:
    """A platform probes /readyz every few seconds: an outage of an hour must not be a warning per probe, but one
    line when readiness goes and one when it comes back."""
    slack, letta, tmp = fresh
    db = tmp / "bridge.db"
    bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, db)).start(tmp / "bridge.log")
    try:
        holder = sqlite3.connect(db, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            for _ in range(4):
                assert httpx.get(f"{bridge.url}/readyz", timeout=10).status_code == 503
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        for _ in range(3):
            assert httpx.get(f"{bridge.url}/readyz", timeout=10).status_code == 200
    finally:
        assert bridge.stop() == 0
    lines = bridge.logs().splitlines()
    assert len([line for line in lines if "not ready" in line]) == 1, bridge.logs()
    assert len([line for line in lines if "ready again" in line]) == 1, bridge.logs()


def test_with_json_logs_a_serve_that_cannot_start_says_why_in_a_json_line(tmp_path: Path) -> None:
    """LOG_FORMAT=json is for a log pipeline that parses each line: the one line a crash-looping `serve` writes,
    the one an operator most needs, must be JSON too (level error), and still exit 1."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", HOST="127.0.0.1",
                       PORT=str(port), LOG_FORMAT="json")
        done = subprocess.run([sys.executable, "-m", "bridge", "serve"], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line is JSON
    [failure] = [line for line in lines if line["level"] == "error"]
    assert "already in use" in failure["message"] and f"127.0.0.1:{port}" in failure["message"], failure


def test_an_event_that_arrives_while_serve_drains_is_refused_for_slack_to_retry(
    fresh: tuple[FakeSlack, FakeLetta, Path],
) -> None:
    """Between SIGTERM and exit a router's kept-alive connection still brings events (Postgres: no ingress). Each
    is answered 503 `the bridge is stopping` (Slack delivers it again, to the next process) without an ERROR
    traceback in the log; the retry, once a process serves again, becomes its turn."""
    slack, letta, tmp = fresh
    alice = letta.add_agent("alice")
    letta.set_delay(alice, 3.0)  # the turn in flight when SIGTERM comes
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", HTTP_EVENTS_INBOX="false")
    assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    late = mention_event("one more thing", channel=CHANNEL)
    with httpx.Client(base_url=bridge.url, timeout=10) as router:  # one kept-alive connection
        assert router.get("/healthz").status_code == 200
        bridge.mention("a slow question", CHANNEL)
        letta.wait_for(lambda: any(i.finished is None for i in letta.inputs), 10)
        assert bridge.proc is not None
        bridge.proc.terminate()
        while router.get("/healthz").json()["status"] != "stopping":
            time.sleep(0.05)
        body = event_body(late)
        answer = router.post("/slack/events", content=body,
                             headers=signed_headers(SIGNING_SECRET, body, "application/json"))
        assert (answer.status_code, answer.json()) == (503, {"error": "the bridge is stopping"})
    assert bridge.stop() == 0
    assert "Traceback" not in bridge.logs() and "ERROR" not in bridge.logs(), bridge.logs()
    bridge.restart()
    try:
        assert bridge.post(event_body(late)).status_code == 200  # Slack's retry, signed anew
        slack.wait_for(lambda: "white_check_mark" in slack.reactions(CHANNEL, late["ts"]), 15)
    finally:
        assert bridge.stop() == 0


def test_log_level_debug_adds_the_bridges_own_lines_not_every_sql_statement(
    fresh: tuple[FakeSlack, FakeLetta, Path],
) -> None:
    """LOG_LEVEL=DEBUG is what an operator turns on to follow a turn: it adds the bridge's debug lines (the text
    of each message), not two lines per SQL statement from aiosqlite (with their parameters, every few seconds
    even when idle) nor Bolt's middleware chain for each request, which buried them."""
    slack, letta, tmp = fresh
    alice = letta.add_agent("alice")
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", LOG_LEVEL="DEBUG", LOG_FORMAT="json")
    assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        event, _ = bridge.mention("follow me", CHANNEL)
        slack.wait_for(lambda: "white_check_mark" in slack.reactions(CHANNEL, event["ts"]), 15)
    finally:
        assert bridge.stop() == 0
    lines = [json.loads(line) for line in bridge.logs().splitlines() if line.strip()]
    assert any(line["level"] == "debug" and line["logger"].startswith("bridge.") for line in lines)
    third_party = [line for line in lines if line["level"] == "debug" and not line["logger"].startswith("bridge")]
    assert [line["logger"] for line in third_party if line["logger"] != "asyncio"] == [], third_party[:3]


def test_on_the_app_server_sigterm_ends_within_the_grace_not_twice_it(tmp_path: Path) -> None:
    """A platform kills 30 s after SIGTERM and SHUTDOWN_GRACE_SECONDS (20) is the time turns get. On an App
    Server a turn still running at the end of the grace was cancelled, and its cancellation then waited for the
    server's model call to return (abort_wait, 5 s more, or the request timeout): past the kill, an R12 exit
    timeout and no clean exit. What is left after the grace is cut short, and closing the socket ends it."""
    grace = 2.0
    slack = FakeSlack()
    slack.start()
    app = FakeAppServer(hang_release=60)  # the model call in flight returns a minute after the abort
    app.start()
    try:
        alice = app.add_agent("alice", mode="hang")
        env = base_env(slack.api_url, app.url, tmp_path / "bridge.db", SHUTDOWN_GRACE_SECONDS=str(grace))
        assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        bridge.mention("a long question", CHANNEL)
        deadline = time.monotonic() + 10
        while "conversation created" not in bridge.logs():
            assert time.monotonic() < deadline, bridge.logs()
            time.sleep(0.05)
        time.sleep(0.5)  # the input is on the server, its model call running
        assert bridge.proc is not None
        started = time.monotonic()
        bridge.proc.terminate()
        code = bridge.proc.wait(60)
        took = time.monotonic() - started
        assert code == 0, bridge.logs()
        assert took < grace + 2.5, f"took {took:.1f} s after SIGTERM with a grace of {grace} s"
        assert "recorded for the next start count=1" in bridge.logs()
    finally:
        app.stop()
        slack.stop()


def test_with_json_logs_a_serve_missing_a_setting_names_it_in_json_lines(tmp_path: Path) -> None:
    """The deploy button sets LOG_FORMAT=json; a deploy that forgot SLACK_SIGNING_SECRET crash-loops, and its lines
    (which setting, where to find it) must reach the log pipeline as JSON like the rest. Exit 2 as before."""
    env = base_env("http://127.0.0.1:9/api/", "http://127.0.0.1:9", tmp_path / "b.db", LOG_FORMAT="json")
    del env["SLACK_SIGNING_SECRET"]
    done = subprocess.run([sys.executable, "-m", "bridge", "serve"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line is JSON
    assert any("SLACK_SIGNING_SECRET" in line["message"] and line["level"] == "error" for line in lines), lines


@pytest.mark.parametrize("inbox", ["true", "false"])
def test_a_burst_of_unsigned_requests_is_one_warning_not_one_each(
    fresh: tuple[FakeSlack, FakeLetta, Path], inbox: str
) -> None:
    """A scanner or a misconfigured app posting to /slack/events hundreds of times a minute wrote a warning for
    each: the log an operator reads was that. Each is still refused; the log says so once a minute per reason,
    with how many were refused since."""
    slack, letta, tmp = fresh
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db", HTTP_EVENTS_INBOX=inbox)
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        with httpx.Client(base_url=bridge.url, timeout=5) as scanner:
            for n in range(40):
                refused = scanner.post("/slack/events", content=b'{"type": "event_callback"}',
                                       headers={"Content-Type": "application/json"})
                assert refused.status_code == 401, n
    finally:
        assert bridge.stop() == 0
    said = [line for line in bridge.logs().splitlines() if "slack request refused" in line]
    assert len(said) == 1 and "reason=missing signature" in said[0], said[:3]


def test_metrics_carry_the_processs_memory_cpu_and_open_files(fresh: tuple[FakeSlack, FakeLetta, Path]) -> None:
    """A platform restarts a process over its memory quota (Heroku R14/R15) and the bridge caps its connections by
    its open-file limit: the standard process series must be on the page, as any Prometheus client exports them."""
    slack, letta, tmp = fresh
    bridge = BridgeProcess(base_env(slack.api_url, letta.base_url, tmp / "bridge.db")).start(tmp / "bridge.log")
    try:
        page = httpx.get(f"{bridge.url}/metrics", timeout=5).text
    finally:
        assert bridge.stop() == 0
    names = {family.name for family in text_string_to_metric_families(page)}
    for name in ("process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds", "process_max_fds",
                 "process_start_time_seconds", "python_info"):
        assert name in names, name


def test_slack_rate_limits_waited_out_are_counted(fresh: tuple[FakeSlack, FakeLetta, Path]) -> None:
    """Slack's 429s are waited out and the call made again: the post lands late, and nothing said why. Each one
    is counted by method, so that an operator sees the bridge being held back (and by which method)."""
    slack, letta, tmp = fresh
    alice = letta.add_agent("alice")
    env = base_env(slack.api_url, letta.base_url, tmp / "bridge.db")
    assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        slack.fail_next("chat.postMessage", "ratelimited", status=429)
        event, _ = bridge.mention("hello", CHANNEL)
        slack.wait_for(lambda: "white_check_mark" in slack.reactions(CHANNEL, event["ts"]), 15)
        assert [p.args["text"] for p in slack.posts(CHANNEL, event["ts"])], "the post landed after the wait"
        page = httpx.get(f"{bridge.url}/metrics", timeout=5).text
    finally:
        assert bridge.stop() == 0
    counted = {
        sample.labels["method"]: sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "bridge_slack_rate_limited_total"
    }
    assert counted == {"chat.postMessage": 1.0}


def test_an_event_the_database_cannot_record_is_answered_500_in_one_line(
    fresh: tuple[FakeSlack, FakeLetta, Path],
) -> None:
    """Without the events ingress (as on Postgres) an event is recorded before its ack. When the database cannot
    (down, or locked by another process), Slack must get a 500 to deliver it again, and the log one line saying
    so: not aiohttp's ERROR with a traceback of the store's internals for each event."""
    slack, letta, tmp = fresh
    alice = letta.add_agent("alice")
    db = tmp / "bridge.db"
    env = base_env(slack.api_url, letta.base_url, db, HTTP_EVENTS_INBOX="false")
    assert run_cli(env, "channels", "connect", CHANNEL, alice).returncode == 0
    bridge = BridgeProcess(env).start(tmp / "bridge.log")
    try:
        event = mention_event("are you there?", channel=CHANNEL)
        holder = sqlite3.connect(db, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            refused = bridge.post(event_body(event))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert (refused.status_code, refused.json()) == (500, {"error": "the request could not be recorded"})
        assert bridge.post(event_body(event)).status_code == 200  # Slack's retry, signed anew
        slack.wait_for(lambda: "white_check_mark" in slack.reactions(CHANNEL, event["ts"]), 15)
    finally:
        assert bridge.stop() == 0
    assert "Traceback" not in bridge.logs(), bridge.logs()
    [said] = [line for line in bridge.logs().splitlines() if "not recorded" in line]
    assert "WARNING" in said and "database is locked" in said, said
