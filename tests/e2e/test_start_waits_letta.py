"""docs/operations.md: GET /healthz is 503 "starting" before the bridge has started, and docs/paas.md: the
health checks do not ask Letta ("with Letta down the bridge still takes each event"). `serve` asks a http(s)://
Letta `GET /app-server-info` before it listens (bridge/serve.py: letta_kind_told), waiting LETTA_CONNECT_TIMEOUT
(up to 600 s) for the answer: with a Letta that takes connections and never answers, nothing listens on PORT for
that long, no /healthz, and every Slack event meanwhile is refused at the TCP level."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.e2e.harness import BridgeProcess, base_env
from tests.e2e.test_lookup_timeout_probe import silent_letta  # noqa: F401 (fixture)
from tests.fakes.slack import FakeSlack


def test_serve_answers_healthz_at_once_whatever_letta_does(silent_letta: str, tmp_path: Path) -> None:  # noqa: F811
    with FakeSlack() as slack:
        env = base_env(slack.api_url, silent_letta, tmp_path / "b.db", LETTA_CONNECT_TIMEOUT="30")
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log", wait=False)
        try:
            started = time.monotonic()
            answered = None
            while time.monotonic() - started < 8:
                try:
                    answered = httpx.get(f"{bridge.url}/healthz", timeout=1).status_code
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert answered is not None, f"nothing listened on PORT for 8 s:\n{bridge.logs()}"
        finally:
            bridge.stop()
