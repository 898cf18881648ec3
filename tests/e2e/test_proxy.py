"""Behind a proxy (docs/operations.md#behind-a-proxy): every connection the bridge makes goes through the one the
environment names (Slack's Web API, a shared file's download, Letta over REST, Socket Mode's socket, an App
Server's socket, a command's answer to its response_url), and NO_PROXY sends them all directly. The fakes listen on
127.0.0.1, which a proxy reaches like any host."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.harness import APP_TOKEN, BridgeProcess, base_env, run_cli
from tests.fakes.appserver import FakeAppServer
from tests.fakes.letta import FakeLetta
from tests.fakes.proxy import ForwardingProxy
from tests.fakes.signing import command_body, event_body, mention_event
from tests.fakes.slack import FakeSlack

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


def run_a_turn_with_a_file(tmp_path: Path, **proxies: str) -> tuple[FakeSlack, FakeLetta, list[str]]:
    """One mention with an image into a bound channel, served over HTTP; returns what the proxy was asked for."""
    with ForwardingProxy() as proxy, FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", **{k: v.format(proxy=proxy.url)
                                                                            for k, v in proxies.items()})
        alice = letta.add_agent("alice")
        assert run_cli(env, "channels", "connect", "C0PROXY01", alice).returncode == 0
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            event = mention_event("what is in this?", channel="C0PROXY01")
            event["files"] = [slack.add_file("dot.png", PNG, "image/png")]
            assert bridge.post(event_body(event)).status_code == 200
            slack.wait_for(lambda: len(slack.posts("C0PROXY01", event["ts"])) == 1, timeout=15)
            assert bridge.stop() == 0
        finally:
            bridge.stop()
        [post] = slack.posts("C0PROXY01", event["ts"])
        assert post.args["text"] == "alice says hi"
        assert len(slack.file_fetches) == 1, "the image was fetched"
        return slack, letta, [target for _, target in proxy.seen]


def test_slack_calls_file_downloads_and_letta_all_take_the_proxy(tmp_path: Path) -> None:
    slack, letta, seen = run_a_turn_with_a_file(tmp_path, HTTP_PROXY="{proxy}")
    assert any(t.startswith(slack.api_url) for t in seen), seen
    assert any(t.startswith(slack.base_url + "files-pri/") for t in seen), seen
    assert any(t.startswith(letta.base_url) for t in seen), seen


def test_no_proxy_sends_every_connection_directly(tmp_path: Path) -> None:
    """slack_sdk on its own took HTTP_PROXY for Slack's calls whatever NO_PROXY said."""
    _, _, seen = run_a_turn_with_a_file(tmp_path, HTTP_PROXY="{proxy}", NO_PROXY="127.0.0.1")
    assert seen == []


def test_socket_mode_and_an_app_servers_socket_take_the_proxy(tmp_path: Path) -> None:
    app = FakeAppServer(scale=0.001)
    app.start()
    with ForwardingProxy() as proxy, FakeSlack() as slack:
        env = base_env(slack.api_url, app.url, tmp_path / "b.db", SLACK_APP_TOKEN=APP_TOKEN, HTTP_PROXY=proxy.url)
        del env["SLACK_SIGNING_SECRET"]
        agent = app.add_agent("zed")
        assert run_cli(env, "channels", "connect", "C0PROXY02", agent).returncode == 0
        bridge = BridgeProcess(env, mode="socket").start(tmp_path / "bridge.log")
        try:
            slack.wait_for(slack.socket_connected, timeout=20)
            event = mention_event("over the socket", channel="C0PROXY02")
            slack.send_socket_event(json.loads(event_body(event)))
            slack.wait_for(lambda: len(slack.posts("C0PROXY02", event["ts"])) == 1, timeout=15)
            assert bridge.stop() == 0
        finally:
            bridge.stop()
            app.stop()
    hosts = proxy.targets()
    assert urlsplit(slack.api_url).netloc in hosts and urlsplit(app.url).netloc in hosts, hosts
    assert any(urlsplit(t).path == "/ws" and urlsplit(t).netloc == urlsplit(slack.api_url).netloc
               for _, t in proxy.seen), proxy.seen


@pytest.mark.parametrize("no_proxy", ["localhost", "127.0.0.1"])
def test_a_commands_answer_takes_the_route_the_rule_gives_its_response_url(tmp_path: Path, no_proxy: str) -> None:
    """Bolt's respond() took the route the rule gave Slack's API host, not its response_url's; and where that
    was direct, slack_sdk read HTTP(S)_PROXY itself, whatever NO_PROXY said. Two response_urls on the fake Slack,
    one named 127.0.0.1 (as its API is), one localhost: only the one NO_PROXY does not name takes the proxy."""
    with ForwardingProxy() as proxy, FakeSlack() as slack, FakeLetta(version="0.16.8") as letta:
        api = urlsplit(slack.api_url).netloc
        hosts = {"127.0.0.1": api, "localhost": api.replace("127.0.0.1", "localhost")}
        env = base_env(slack.api_url, letta.base_url, tmp_path / "b.db", HTTP_PROXY=proxy.url, NO_PROXY=no_proxy,
                       SLACK_RESPONSE_URL_HOSTS=",".join(hosts.values()))
        bridge = BridgeProcess(env).start(tmp_path / "bridge.log")
        try:
            for host in hosts.values():
                url = slack.response_url().replace(api, host)
                hook = url.rsplit("/", 1)[1]
                body = command_body("status", channel_id="C0PROXY03", response_url=url)
                assert bridge.post(body, content_type="application/x-www-form-urlencoded").status_code == 200
                slack.wait_for(lambda: any(p["_url"].endswith(f"/response/{hook}") for p in slack.response_posts))
        finally:
            bridge.stop()
    proxied = {urlsplit(target).netloc for _, target in proxy.seen if "/response/" in target}
    assert proxied == {hosts[name] for name in hosts if name != no_proxy}, proxy.seen
    assert (api in proxy.targets()) is (no_proxy != "127.0.0.1")  # Slack's API: the same rule, by its own host
