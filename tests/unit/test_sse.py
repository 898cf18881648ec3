"""The SSE decoder is held to httpx-sse (what the bridge read Letta's streams with before it moved to aiohttp):
for any text, cut into chunks anywhere (inside a CRLF, inside a UTF-8 character), the same events."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import httpx
from httpx_sse import EventSource
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.letta.sse import SseDecoder, SseEvent, sse_events

Seen = list[tuple[str, str, str, int | None]]


def ours(chunks: list[bytes]) -> Seen:
    decoder = SseDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)] + decoder.end()
    return [(e.event, e.data, e.id, e.retry) for e in events]


def theirs(chunks: list[bytes]) -> Seen:
    async def read() -> Seen:
        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())
        return [(e.event, e.data, e.id, e.retry) async for e in EventSource(response).aiter_sse()]

    return asyncio.run(read())


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


PLAIN = st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",))  # a line's characters
FIELD_LINES = st.one_of(
    st.sampled_from(["", ":", ": ping", "data:", "data: ", "event: error", "event:message", "id: 7", "id:\0x",
                     "retry: 1500", "retry: soon", "data: [DONE]", "data:  two spaces", "unknown: field", "data"]),
    st.builds(lambda s: "data: " + s, st.text(alphabet=PLAIN, max_size=12)),
    st.text(alphabet=PLAIN, max_size=8),
)
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(FIELD_LINES, ENDINGS), max_size=14),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_stream_cut_anywhere_gives_httpx_sses_events(
    lines: list[tuple[str, str]], unterminated: bool, points: list[int]
) -> None:
    text = "".join(line + end for line, end in lines)
    if unterminated and lines:
        text = text.rstrip("\r\n")
    data = text.encode("utf-8")
    assert ours(cut(data, points)) == theirs(cut(data, points)) == theirs([data])


def test_lettas_framing_one_byte_at_a_time() -> None:
    stream = (
        'data: {"message_type":"assistant_message","content":"h\u00e9llo"}\n\n'
        "event: error\ndata: {\"error\": \"boom\"}\r\n\r\n"
        ": keep-alive\n\n"
        "data: [DONE]\n\n"
    ).encode()
    assert ours([stream[i : i + 1] for i in range(len(stream))]) == [
        ("message", '{"message_type":"assistant_message","content":"h\u00e9llo"}', "", None),
        ("error", '{"error": "boom"}', "", None),
        ("message", "[DONE]", "", None),
    ]


def test_a_crlf_split_across_chunks_is_one_line_end() -> None:
    events = ours([b"data: a\r", b"\n\r", b"\ndata: b\r", b"\r"])
    assert events == [("message", "a", "", None), ("message", "b", "", None)]


def test_the_async_reader_flushes_an_unterminated_stream() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: one\n\ndata: tw"
        yield b"o\n"  # no blank line: the event is never complete

    async def read() -> list[SseEvent]:
        return [event async for event in sse_events(chunks())]

    assert asyncio.run(read()) == [SseEvent("one")]


def test_a_very_large_event_in_small_chunks_is_read_in_linear_time() -> None:
    """An event of several megabytes (a tool's long return) arrives in the socket's small chunks; each chunk was
    joined to everything before it and scanned again, so 8 MB in 8 KB chunks held the event loop (every turn, every
    Socket Mode acknowledgement) for seconds."""
    import time

    payload = b'data: {"message_type":"tool_return_message","tool_return":"' + b"x" * 8_000_000 + b'"}\n\n'
    decoder = SseDecoder()
    started = time.process_time()
    events = [e for i in range(0, len(payload), 8192) for e in decoder.feed(payload[i : i + 8192])]
    took = time.process_time() - started
    assert len(events) == 1 and len(events[0].data) == len(payload) - len("data: ") - 2
    assert took < 1.0, f"{took:.1f} s of CPU for one 8 MB event"
