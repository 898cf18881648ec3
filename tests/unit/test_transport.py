"""What the REST transport makes of failures on the wire, against raw servers on 127.0.0.1: only a refused
connection (certainly unsent) is sent again; a stall or a cut mid-stream is reported once, never retried (Letta does
not deduplicate: a second send is a second turn)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable

import pytest

from bridge.letta.client import LettaClient
from bridge.letta.errors import Kind, LettaError

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
FIRST = b'data: {"message_type":"ping","id":"p"}\n\n'
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(HEAD + b"%x\r\n%s\r\n" % (len(FIRST), FIRST))
    await writer.drain()
    await asyncio.sleep(30)


async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(HEAD + b"%x\r\n%s\r\n" % (len(FIRST), FIRST))
    await writer.drain()
    writer.transport.abort()


async def close_unanswered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def failure(behaviour: Behaviour, streamed: bool) -> tuple[LettaError, int]:
    """The error a send to a server behaving so ends in, and how many sends (POSTs) the server received: the
    client's look at the agent's runs before its first send is no send."""
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        head = await reader.readuntil(b"\r\n\r\n")
        requests += head.startswith(b"POST ")
        await behaviour(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # busy_wait: the look at the runs fails on the way too, and is made again within it (left_runs.runs_ended).
    client = LettaClient(f"http://127.0.0.1:{port}", read_timeout=0.3, retry_base=0.01, busy_wait=0.5)
    try:
        with pytest.raises(LettaError) as caught:
            if streamed:
                async for _ in client.stream_agent("agent-1", {"role": "user", "content": "hi"}):
                    pass
            else:
                await client.send_agent("agent-1", {"role": "user", "content": "hi"})
    finally:
        await client.aclose()
        server.close()
    return caught.value, requests


@pytest.mark.parametrize("streamed", [True, False])
def test_a_stall_is_a_timeout_and_is_never_sent_again(streamed: bool) -> None:
    error, requests = asyncio.run(failure(stall, streamed))
    assert (error.kind, requests) == (Kind.TIMEOUT, 1)


@pytest.mark.parametrize("streamed", [True, False])
def test_a_stream_cut_short_is_a_disconnect_and_is_never_sent_again(streamed: bool) -> None:
    error, requests = asyncio.run(failure(cut, streamed))
    assert (error.kind, requests) == (Kind.DISCONNECTED, 1)


def test_a_connection_closed_before_any_answer_is_a_disconnect_and_is_never_sent_again() -> None:
    error, requests = asyncio.run(failure(close_unanswered, True))
    assert (error.kind, requests) == (Kind.DISCONNECTED, 1)


def test_a_refused_connection_is_unreachable_after_its_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there

    async def send() -> LettaError:
        client = LettaClient(f"http://127.0.0.1:{port}", retry_base=0.01, send_retries=2, busy_wait=0.5)
        try:
            with pytest.raises(LettaError) as caught:
                async for _ in client.stream_agent("agent-1", {"role": "user", "content": "hi"}):
                    pass
            return caught.value
        finally:
            await client.aclose()

    error = asyncio.run(send())
    assert error.kind == Kind.UNREACHABLE and error.certainly_unsent


HEALTH = b'{"version":"0.16.8","status":"ok"}'


def test_the_environments_proxy_carries_every_request_unless_no_proxy_exempts_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY as httpx honoured it, read once when the client is made (not on a thread per request)."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            len(HEALTH), HEALTH))
        await writer.drain()
        writer.close()

    async def ask(no_proxy: str) -> str:
        server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        monkeypatch.setenv("NO_PROXY", no_proxy)
        client = LettaClient("http://letta.invalid:8283", send_retries=0, connect_timeout=2, busy_wait=0.5)
        try:
            return (await client.health()).version
        except LettaError as error:
            return str(error.kind)
        finally:
            await client.aclose()
            server.close()

    assert asyncio.run(ask("example.org")) == "0.16.8"
    assert seen == [b"GET http://letta.invalid:8283/v1/health/ HTTP/1.1"]
    assert asyncio.run(ask("letta.invalid")) == str(Kind.UNREACHABLE), "exempt: asked directly, and no such host"
    assert len(seen) == 1


STREAM_EVENT = b'data: {"message_type":"ping","id":"p","run_id":"run-1","seq_id":1}\n\n'


def test_a_dropped_background_stream_whose_re_attach_keeps_failing_is_not_asked_again_in_a_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gateway answering 502 while Letta restarts: the re-attaches pause longer each time, then the turn is told
    the stream was cut (before, some 1,200 re-attaches a second until the turn's deadline)."""
    from bridge.letta import exchange as exchange_module

    monkeypatch.setattr(exchange_module, "REATTACH_PAUSES", (0.0, 0.2, 0.4))
    resumes: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"/stream " in head.split(b"\r\n")[0]:  # POST /v1/conversations/{id}/stream: the re-attach
            resumes.append(asyncio.get_running_loop().time())
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        writer.write(HEAD + b"%x\r\n%s\r\n" % (len(STREAM_EVENT), STREAM_EVENT))  # the send: one event, then cut
        await writer.drain()
        writer.transport.abort()

    async def go() -> list[object]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        client = LettaClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", send_retries=0, busy_wait=0.5)
        message = {"role": "user", "content": "hi", "otid": "o-1"}
        try:
            return [
                item
                async for item in exchange_module.exchange(
                    client, message, "alice", True, agent_id="agent-1", conversation="conv-1",
                    background=exchange_module.Progress("o-1"),
                )
            ]
        finally:
            await client.aclose()
            server.close()

    said = asyncio.run(asyncio.wait_for(go(), 10))
    assert len(resumes) == 3, resumes
    assert resumes[2] - resumes[1] >= 0.35 and resumes[1] - resumes[0] >= 0.15, "each pause longer than the last"
    # The cut is what happened to the send, not the gateway's 502: the runner reads the reply from history.
    assert isinstance(said[-1], LettaError) and said[-1].kind == Kind.DISCONNECTED


LLM_RATE_LIMIT = (b'{"error": {"type": "llm_rate_limit", "message": "Rate limit exceeded for LLM model provider. '
                  b'Please wait before making another request.", "detail": "429 from the provider"}}')


@pytest.mark.parametrize(("status", "body", "asked"), [
    (429, LLM_RATE_LIMIT, 1),  # the agent loop's model was rate-limited: steps before it are stored
    (503, b'{"detail": "The database is temporarily unavailable. Please try again later."}', 1),
    (429, b"<html>slow down</html>", 3),  # a gateway's, answered before Letta: sent again
    (503, b"<html>503 Service Unavailable</html>", 1),  # a gateway's, which may have forwarded it first
    (503, b"no healthy upstream", 3),  # Envoy's: it had nowhere to send it
])
def test_a_send_is_sent_again_only_when_a_429_or_503_came_from_before_letta(
    status: int, body: bytes, asked: int
) -> None:
    """Letta answers 429 `llm_rate_limit` and 503 from inside the agent loop (letta/server/rest_api/app.py), after
    the steps it finished were stored: sending again would be a second turn. Before, every 429 and 503 was
    taken as certainly unsent. A gateway's 503 is sent again only when its body proves it never forwarded the send
    (tests/unit/test_gateway_errors.py)."""
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)
        await reader.readexactly(length)
        requests.append(head.split(b"\r\n")[0])
        kind = {b"{": b"application/json", b"<": b"text/html"}.get(body[:1], b"text/plain")
        writer.write(b"HTTP/1.1 %d Busy\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (status, kind, len(body), body))
        await writer.drain()
        writer.close()

    async def send() -> LettaError:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = LettaClient(f"http://127.0.0.1:{port}", send_retries=2, retry_base=0.01, busy_wait=0.5)
        try:
            await client.send_agent("agent-1", {"role": "user", "content": "hi", "otid": "o-1"})
        except LettaError as error:
            return error
        finally:
            await client.aclose()
            server.close()
        raise AssertionError("the send did not fail")

    error = asyncio.run(send())
    assert len([r for r in requests if r.startswith(b"POST ")]) == asked and error.status == status


REPR_422 = {
    "trace_id": "",
    "detail": "[{'type': 'missing', 'loc': ('body', 'messages', 0, 'function-after[generate_otid_if_missing(), "
    "MessageCreate]', 'content', 'list[tagged-union[TextContent,ImageContent]]', 0, 'image', 'source', 'base64', "
    "'media_type'), 'msg': 'Field required', 'input': {'type': 'base64', 'data': 'iVBORw0KGgo'}}]",
}


async def _serve_once(status: int, body: bytes, content_type: str = "application/json") -> asyncio.Server:
    """A raw server answering every request with the same status and body (no Letta behind it)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, content_type.encode(), len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_a_0_16_422_reaches_slack_as_plain_words_not_a_python_repr() -> None:
    async def go() -> LettaError:
        server = await _serve_once(422, json.dumps(REPR_422).encode())
        client = LettaClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        try:
            with pytest.raises(LettaError) as caught:
                await client.send_agent("agent-1", {"role": "user", "content": "hi"})
            return caught.value
        finally:
            await client.aclose()
            server.close()

    error = asyncio.run(go())
    assert error.kind == Kind.INVALID
    said = error.explain("alice")
    assert "Field required" in said, said  # pydantic's own words for what was wrong
    assert "'loc':" not in said and "[{'type'" not in said, said  # never a Python repr dumped into the thread


def test_a_busy_conversation_is_waited_out_for_busy_wait_then_said_even_with_retry_base_zero() -> None:
    """LETTA_RETRY_BASE_SECONDS=0 (allowed: ge=0) with another client's run holding the conversation: every pause is
    0 s, so `waited` never grows, Letta is asked again back to back (~1000 POSTs), and then 0 * 2.0**1024 raises
    OverflowError: the turn crashes instead of saying the conversation stayed busy."""
    busy = json.dumps({
        "detail": "CONFLICT: Cannot send a new message: Another request (run_id=run-1) is currently being processed "
        "for this conversation. Please wait for it to complete.",
        "run_id": "run-1",
    }).encode()

    async def go() -> LettaError | str:
        server = await _serve_once(409, busy)
        client = LettaClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", retry_base=0.0, busy_wait=0.5)
        try:
            async with asyncio.timeout(5):
                async for _ in client.stream_conversation("conv-1", {"role": "user", "content": "hi"}):
                    pass
        except LettaError as error:
            return error
        except TimeoutError:
            return "still waiting after 5 s (busy_wait was 0.5 s)"
        except Exception as exc:
            return f"crashed: {type(exc).__name__}: {exc}"
        finally:
            await client.aclose()
            server.close()
        return "sent"

    outcome = asyncio.run(go())
    assert isinstance(outcome, LettaError) and outcome.busy, outcome
