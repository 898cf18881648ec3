"""LETTA_BASE_URL written http:// for an App Server that is not up yet when the bridge starts (both started
together, a reboot): its kind could not be told, the bridge took it for a REST server and stayed so, every
mention failing ("Letta does not know alice") until a restart, with nothing said at start; `channels connect`
said the server "is a REST server". Found against the real App Server by a review helper."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.e2e.harness import BridgeProcess, base_env, free_port, run_cli
from tests.fakes.appserver import FakeAppServer
from tests.fakes.cut_relay import CutOnce
from tests.fakes.slack import FakeSlack

AGENT = "agent-local-00000000-0000-4000-8000-000000000000"


def test_connect_to_an_http_url_nothing_answers_says_so_not_that_it_is_a_rest_server(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        env = base_env(slack.api_url, f"http://127.0.0.1:{free_port()}", tmp_path / "b.db")
        done = run_cli(env, "channels", "connect", "C0LATE0001", AGENT)
    assert done.returncode == 1, done.stderr
    assert "cannot reach the Letta server" in done.stderr and "REST server" not in done.stderr


def test_an_app_server_up_after_the_bridge_is_said_and_the_bridge_stops_to_be_started_again(tmp_path: Path) -> None:
    port = free_port()
    app = FakeAppServer(scale=0.001)
    app.start()
    try:
        with FakeSlack() as slack:
            env = base_env(slack.api_url, f"http://127.0.0.1:{port}", tmp_path / "b.db")
            bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
            try:
                assert "did not answer at start" in bridge.logs() and "taken for a REST server" in bridge.logs()
                with CutOnce(app.port, b"never in any answer", port=port):
                    assert bridge.proc is not None
                    try:
                        bridge.proc.wait(20)  # asked again every 5 s
                    except subprocess.TimeoutExpired:
                        raise AssertionError(f"the bridge went on as a REST client:\n{bridge.logs()}") from None
                time.sleep(0.2)
                assert bridge.proc.returncode not in (0, None)
                assert "answers now, and it is an App Server" in bridge.logs()
            finally:
                bridge.stop()
    finally:
        app.stop()
