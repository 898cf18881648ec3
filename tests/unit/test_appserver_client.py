"""AppServerClient against the fake App Server (tests/fakes/appserver.py, which plays the captured frames)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bridge.letta import paging
from bridge.letta.appserver import (
    AppServerClient,
    Finished,
    SocketBusy,
    TextDelta,
    TurnEvent,
    conversation_stuck,
    endpoints,
    wire,
)
from bridge.letta.appserver import client as app_client
from bridge.letta.appserver.socket import Subscription
from bridge.letta.errors import Kind, LettaError
from bridge.logs import ContextFilter, log_context
from tests.fakes.appserver import FakeAppServer


def run(fake: FakeAppServer, body: Callable[[AppServerClient], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        options.setdefault("request_timeout", 2.0)
        options.setdefault("backoff_base", 0.05)
        client = AppServerClient(options.pop("url", fake.url), options.pop("api_key", None), **options)
        try:
            return await body(client)
        finally:
            await client.aclose(wait=5.0, force=True)

    return asyncio.run(main())


async def turn(client: AppServerClient, agent: str, conversation: str, otid: str, **kw: Any) -> list[TurnEvent]:
    return [event async for event in client.send(agent, conversation, f"hello {otid}", otid, **kw)]


def test_base_urls_are_told_apart() -> None:
    assert endpoints("ws://127.0.0.1:4500") == ("http://127.0.0.1:4500", "ws://127.0.0.1:4500/ws")
    assert endpoints("ws://127.0.0.1:4500/ws/") == ("http://127.0.0.1:4500", "ws://127.0.0.1:4500/ws")
    assert endpoints("https://letta.example") == ("https://letta.example", "wss://letta.example/ws")


def test_describe_names_version_and_protocol(fake: FakeAppServer) -> None:
    info = run(fake, lambda c: c.describe())
    assert (info.version, info.protocol_version, info.backend) == ("0.32.18", 1, "local")
    assert info.protocol_supported and info.capabilities["conversation_management"] is True


def test_a_wrong_or_missing_key_is_unauthorized() -> None:
    server = FakeAppServer(token="s3cret")
    server.start()
    try:
        for key in (None, "wrong"):
            with pytest.raises(LettaError) as http:
                run(server, lambda c: c.describe(), api_key=key)
            assert http.value.kind == Kind.UNAUTHORIZED and http.value.status == 401
            with pytest.raises(LettaError) as ws:
                run(server, lambda c: c.list_agents(), api_key=key, connect_timeout=0.5)
            assert ws.value.kind == Kind.UNAUTHORIZED
            # The App Server has no password and no API keys: its key is the --ws-token-file token (README §13).
            for refused in (http.value, ws.value):
                said = refused.for_operator("the check")
                assert "--ws-token-file" in said and "password" not in said and "Letta Cloud" not in said, said
        assert run(server, lambda c: c.list_agents(), api_key="s3cret") == []
    finally:
        server.stop()


def test_a_refused_key_fails_a_request_at_once_not_after_the_connect_timeout() -> None:
    """A 401 on the upgrade is the server's answer, not a server still starting: a mention against a wrong
    LETTA_API_KEY waited the whole connect timeout (10 s) while the socket retried, then said the key was wrong."""
    server = FakeAppServer(token="s3cret")
    server.start()
    try:
        started = time.monotonic()
        with pytest.raises(LettaError) as refused:
            run(server, lambda c: c.list_agents(), api_key="wrong", connect_timeout=5.0)
        assert refused.value.kind == Kind.UNAUTHORIZED and time.monotonic() - started < 2.5
    finally:
        server.stop()


def test_nothing_listening_is_unreachable() -> None:
    with pytest.raises(LettaError) as error:
        asyncio.run(AppServerClient("ws://127.0.0.1:9", connect_timeout=0.3).list_agents())
    assert error.value.kind == Kind.UNREACHABLE


def test_agents_are_listed_page_by_page(fake: FakeAppServer, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [fake.add_agent(f"agent{i}") for i in range(25)]
    first = run(fake, lambda c: c.list_agents())
    assert len(first) == 20  # agent_list's default page (README §3)
    monkeypatch.setattr(paging, "PAGE_SIZE", 7)
    every = run(fake, lambda c: c.all_agents())
    assert sorted(a.id for a in every) == sorted(ids)
    pages = [f for f in fake.received if isinstance(f, dict) and f.get("type") == "agent_list"]
    assert [p["query"].get("after") is None for p in pages[1:]] == [True, False, False, False]


def test_one_conversation_per_thread_found_again_by_its_key(fake: FakeAppServer) -> None:
    alice = fake.add_agent("alice")

    async def body(client: AppServerClient) -> None:
        one = await client.create_conversation(alice, "T1:C1:1700000000.000100")
        two = await client.create_conversation(alice, "T1:C1:1700000000.000200")
        assert one.id != two.id and one.summary == "T1:C1:1700000000.000100"
        assert {c.id for c in await client.list_conversations(alice)} == {one.id, two.id}
        found = await client.find_conversation(alice, "T1:C1:1700000000.000200")
        assert found is not None and found.id == two.id
        assert await client.find_conversation(alice, "T1:C1:nope") is None

    run(fake, body)


def test_a_streamed_reply_is_joined_by_message_id(fake: FakeAppServer) -> None:
    alice = fake.add_agent("alice")

    async def body(client: AppServerClient) -> list[TurnEvent]:
        conversation = await client.create_conversation(alice, "T1:C1:1.0")
        return await turn(client, alice, conversation.id, "otid-1")

    events = run(fake, body)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["alice ", "alice says ", "alice says hi"]
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.error is None
    assert finished.replies == ("alice says hi",) and finished.stop_reason == "end_turn"
    sent = next(f for f in fake.received if isinstance(f, dict) and f.get("type") == "input")
    assert sent["payload"]["client_tool_allowlist"] == []  # tools off unless an operator turns them on
    assert sent["payload"]["messages"][0]["client_message_id"] == "otid-1"


def test_a_failing_model_ends_in_plain_words(fake: FakeAppServer) -> None:
    bob = fake.add_agent("bob", mode="500")

    async def body(client: AppServerClient) -> list[TurnEvent]:
        conversation = await client.create_conversation(bob, "T1:C1:2.0")
        return await turn(client, bob, conversation.id, "otid-500")

    finished = run(fake, body)[-1]
    assert isinstance(finished, Finished) and finished.stop_reason == "llm_api_error"
    assert finished.error is not None and finished.error.kind == Kind.RUN_FAILED
    assert "the model provider failed" in finished.error.explain("bob") and "{" not in finished.error.detail


def test_the_deadline_aborts_and_the_conversation_goes_on(fake: FakeAppServer) -> None:
    carol = fake.add_agent("carol", mode="hang")

    async def body(client: AppServerClient) -> tuple[list[TurnEvent], list[TurnEvent], Any]:
        conversation = await client.create_conversation(carol, "T1:C1:3.0")
        late = await turn(client, carol, conversation.id, "otid-late", deadline=0.3)
        fake.modes[carol] = "ok"
        after = await turn(client, carol, conversation.id, "otid-after", deadline=5)
        return late, after, await client.find_send(conversation.id, "otid-late")

    late, after, found = run(fake, body, abort_wait=1.0)
    assert isinstance(late[-1], Finished) and late[-1].error is not None and late[-1].error.kind == Kind.TIMEOUT
    assert any(isinstance(f, dict) and f.get("type") == "abort_message" for f in fake.received)
    assert isinstance(after[-1], Finished) and after[-1].replies == ("carol says hi",)  # queued behind the abort
    assert found is not None and found.replies == ()  # the aborted send was stored, with no reply


def test_the_socket_is_reconnected_after_the_server_drops_it(fake: FakeAppServer) -> None:
    alice = fake.add_agent("alice")

    async def body(client: AppServerClient) -> int:
        conversation = await client.create_conversation(alice, "T1:C1:4.0")
        await turn(client, alice, conversation.id, "otid-a")
        fake.drop_connections()
        await asyncio.sleep(0.2)
        events = await turn(client, alice, conversation.id, "otid-b")
        assert isinstance(events[-1], Finished) and events[-1].replies == ("alice says hi",)
        return client.socket.connections

    assert run(fake, body) == 2


def test_a_drop_mid_turn_cuts_it_and_leaves_the_conversation_stuck(fake: FakeAppServer) -> None:
    """README §9 (captured) and observed on 0.34.12: the turn is cancelled, a truncated reply is stored, and the
    conversation refuses every input until a restart, while a new conversation of the agent works."""
    dave = fake.add_agent("dave", mode="slow:0.4")

    async def body(client: AppServerClient) -> None:
        stuck = await client.create_conversation(dave, "T1:C1:5.0")
        sending = asyncio.ensure_future(turn(client, dave, stuck.id, "otid-cut"))
        await asyncio.sleep(0.1)
        fake.drop_connections()
        cut = await sending
        assert isinstance(cut[-1], Finished) and cut[-1].error is not None
        assert cut[-1].error.kind == Kind.DISCONNECTED and cut[-1].error.outcome_unknown
        await asyncio.sleep(0.5)
        refused = await turn(client, dave, stuck.id, "otid-again")
        assert isinstance(refused[-1], Finished) and refused[-1].error is not None
        assert conversation_stuck(refused[-1].error), refused[-1].error
        fresh = await client.create_conversation(dave, "T1:C1:5.0")
        assert (await turn(client, dave, fresh.id, "otid-fresh"))[-1].replies == ("dave says hi",)  # type: ignore[union-attr]
        fake.restart()
        await asyncio.sleep(0.2)
        assert (await turn(client, dave, stuck.id, "otid-later"))[-1].replies == ("dave says hi",)  # type: ignore[union-attr]

    run(fake, body)


def test_a_request_the_server_drops_times_out_and_the_socket_goes_on(fake: FakeAppServer) -> None:
    fake.add_agent("alice")
    fake.drop.append("agent_list")

    async def body(client: AppServerClient) -> None:
        with pytest.raises(LettaError) as error:
            await client.list_agents()
        assert error.value.kind == Kind.TIMEOUT and error.value.outcome_unknown
        await client.socket.send({"no_type": True})  # dropped without a word (capture ws-malformed-frames.json)
        assert len(await client.list_agents()) == 1

    run(fake, body, request_timeout=0.3)


def test_a_send_is_found_by_its_otid_in_history(fake: FakeAppServer, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = fake.add_agent("alice")
    monkeypatch.setattr(app_client, "HISTORY_PAGE", 3)

    async def body(client: AppServerClient) -> None:
        conversation = await client.create_conversation(alice, "T1:C1:6.0")
        for index in range(4):
            await turn(client, alice, conversation.id, f"otid-{index}")
        first = await client.find_send(conversation.id, "otid-0")  # three pages back
        assert first is not None and first.replies == ("alice says hi",)
        assert await client.find_send(conversation.id, "otid-never") is None
        with pytest.raises(LettaError) as error:
            await client.find_send("local-conv-999999", "otid-0")
        assert error.value.kind == Kind.NOT_FOUND

    run(fake, body)


def test_a_conversation_busy_elsewhere_queues_and_each_send_reads_its_own_turn(fake: FakeAppServer) -> None:
    bob = fake.add_agent("bob", mode="slow:0.3")

    async def body(first: AppServerClient) -> None:
        second = AppServerClient(fake.url, request_timeout=2.0)
        try:
            conversation = await first.create_conversation(bob, "T1:C1:7.0")
            one = asyncio.ensure_future(turn(first, bob, conversation.id, "otid-one"))
            await asyncio.sleep(0.1)
            two = await turn(second, bob, conversation.id, "otid-two")
            assert isinstance(two[-1], Finished) and two[-1].replies == ("bob says hi",)
            assert sum(1 for e in two if isinstance(e, Finished)) == 1
            assert (await one)[-1].replies == ("bob says hi",)  # type: ignore[union-attr]
            found = await first.find_send(conversation.id, "otid-two")
            assert found is not None and found.replies == ("bob says hi",)
        finally:
            await second.aclose(wait=5.0)

    run(fake, body)


def test_the_socket_is_not_closed_under_a_running_turn(fake: FakeAppServer) -> None:
    alice = fake.add_agent("alice", mode="slow:0.3")

    async def body(client: AppServerClient) -> None:
        conversation = await client.create_conversation(alice, "T1:C1:8.0")
        running = asyncio.ensure_future(turn(client, alice, conversation.id, "otid-busy"))
        await asyncio.sleep(0.1)
        with pytest.raises(SocketBusy):
            await client.aclose(wait=0.05)
        await client.aclose(wait=5.0)  # waits for the turn, then closes
        assert (await running)[-1].replies == ("alice says hi",)  # type: ignore[union-attr]

    run(fake, body)


def test_tools_allowed_run_in_standard_mode(fake: FakeAppServer) -> None:
    alice = fake.add_agent("alice")

    async def body(client: AppServerClient) -> None:
        conversation = await client.create_conversation(alice, "T1:C1:9.0")
        await turn(client, alice, conversation.id, "otid-t1")
        await turn(client, alice, conversation.id, "otid-t2")

    run(fake, body, tools=True)
    starts = [f for f in fake.received if isinstance(f, dict) and f.get("type") == "runtime_start"]
    assert len(starts) == 1 and starts[0]["mode"] == "standard"
    inputs = [f for f in fake.received if isinstance(f, dict) and f.get("type") == "input"]
    assert all("client_tool_allowlist" not in f["payload"] for f in inputs)


def test_the_default_conversation_is_never_used(fake: FakeAppServer) -> None:
    alice = fake.add_agent("alice")
    with pytest.raises(LettaError) as error:
        run(fake, lambda c: turn(c, alice, "default", "otid-d"))
    assert error.value.kind == Kind.INVALID


def test_the_metered_client_times_requests_and_turns_and_counts_failures(fake: FakeAppServer) -> None:
    from bridge.letta.appserver.metered import MeteredAppServerClient
    from bridge.metrics import Metrics

    ok, failing = fake.add_agent("mia"), fake.add_agent("max", "500")
    metrics = Metrics()

    async def main() -> None:
        client = MeteredAppServerClient(fake.url, request_timeout=2.0, backoff_base=0.05)
        client.metrics = metrics
        try:
            await client.describe()
            first = await client.create_conversation(ok, "T1 C1 1.0")
            second = await client.create_conversation(failing, "T1 C1 1.0")
            assert isinstance((await turn(client, ok, first.id, "otid-ok"))[-1], Finished)
            assert (await turn(client, failing, second.id, "otid-500"))[-1].error is not None  # type: ignore[union-attr]
        finally:
            await client.aclose(wait=5.0, force=True)

    asyncio.run(main())
    page = metrics.expose().decode()

    def count(method: str, route: str) -> float:
        line = f'bridge_letta_request_duration_seconds_count{{method="{method}",route="{route}"}}'
        return float(next(x for x in page.splitlines() if x.startswith(line)).split()[-1])

    assert count("GET", "/app-server-info") == 1 and count("WS", "conversation_create") == 2
    assert count("WS", "input") == 2 and count("WS", "turn") == 2
    errors = [x for x in page.splitlines() if x.startswith("bridge_letta_errors_total")]
    assert errors == ['bridge_letta_errors_total{kind="run_failed"} 1.0']  # the failed turn, counted once


def test_a_server_is_told_by_its_app_server_info_route(fake: FakeAppServer) -> None:
    """`http(s)://` is asked: the App Server answers GET /app-server-info (or refuses a token as only it does);
    a REST server has no such route, and a server that does not answer is taken for REST (its checks say why)."""
    from bridge.letta.appserver_letta import server_kind
    from tests.fakes.letta import FakeLetta

    locked = FakeAppServer(token="s3cret")
    locked.start()
    rest = FakeLetta(version="0.16.8")
    rest.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        silent = f"http://127.0.0.1:{probe.getsockname()[1]}"  # closed below: nothing answers there
    try:
        assert asyncio.run(server_kind(fake.url.replace("ws://", "http://"))) == "app-server"
        assert asyncio.run(server_kind(locked.url.replace("ws://", "http://"), "wrong")) == "app-server"
        assert asyncio.run(server_kind(rest.base_url)) == "rest"
        assert asyncio.run(server_kind(silent, within=1.0)) == "rest"
    finally:
        locked.stop()
        rest.stop()


def test_a_read_cancelled_as_a_frame_arrives_is_cancelled_and_leaves_the_frame() -> None:
    """A Stop cancels the turn's task just as the frames of its own withdrawal arrive; Python 3.11's wait_for
    returned the frame and dropped the cancel, and the stopped turn read on until its deadline."""

    async def main() -> None:
        subscription = Subscription(wire.Runtime(agent_id="agent-local-1", conversation_id="local-conv-1"), True)
        reading = asyncio.ensure_future(subscription.next(5.0))
        await asyncio.sleep(0)
        subscription.put(wire.UpdateQueue())  # the read's wait completes...
        reading.cancel()  # ...and the read is cancelled, in the same turn of the loop
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert subscription.queue.qsize() == 1

    asyncio.run(main())


def test_the_socket_logs_as_the_process_not_as_the_turn_that_first_used_it(fake: FakeAppServer) -> None:
    """The socket is opened by whichever turn needs it first, but outlives it: its lines (connected, lost,
    reconnected) must not carry that turn's ids, or an operator follows the wrong turn."""
    alice = fake.add_agent("alice")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.addFilter(ContextFilter())  # as setup_logging does: the context is read as the line is logged
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("bridge.letta.appserver.socket")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO

    async def body(client: AppServerClient) -> None:
        with log_context(turn_id=41, binding="T1:C1"):
            await client.create_conversation(alice, "T1:C1:6.0")
        fake.drop_connections()
        await asyncio.sleep(0.3)
        await client.list_agents()

    try:
        run(fake, body)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert any("connection lost" in r.getMessage() for r in seen)
    assert [r.getMessage() for r in seen if getattr(r, "turn_id", None) is not None] == []


class _Outage:
    """A TCP relay to the fake App Server that can go down (listener closed, connections cut) and come back on the
    same port: what the client sees of a server restarted after an outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def up(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{self.port}"

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def test_a_server_back_after_an_outage_is_reached_at_once_not_after_the_grown_backoff(
    fake: FakeAppServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The App Server down for a while: the reconnect's backoff grew (to 30 s by default), and a mention made just
    after the server was back failed as unreachable, since the turn waits for the socket only `connect_timeout`."""
    alice = fake.add_agent("alice")
    # No jitter: the reconnect tries at 0.5, 1, 2, 4 and 8 s.
    monkeypatch.setattr("bridge.letta.appserver.socket.random.random", lambda: 1.0)

    async def main() -> list[TurnEvent]:
        outage = _Outage(fake.port)
        client = AppServerClient(await outage.up(), request_timeout=2.0, backoff_base=0.5, connect_timeout=2.0)
        try:
            conversation = await client.create_conversation(alice, "T1:C1:5.0")
            await outage.down()
            await asyncio.sleep(4.5)  # back between the tries at 4 and 8 s, which the turn's 2 s do not reach
            await outage.up()
            return await turn(client, alice, conversation.id, "otid-back")
        finally:
            await client.aclose(wait=5.0, force=True)

    events = asyncio.run(main())
    assert isinstance(events[-1], Finished) and events[-1].replies == ("alice says hi",)
