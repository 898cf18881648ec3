"""Server-sent events from the bytes of a response, however they are chunked (the WHATWG event-stream format,
which Letta's streamed routes speak).

A few dozen lines rather than one more dependency: httpx-sse, which the tests hold this decoder to
(`tests/unit/test_sse.py`), reads httpx responses only, and aiohttp has no SSE client of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SseDecoder:
    """Bytes in, events out. A line ends at CRLF, CR or LF (a CR at a chunk's end waits for the next chunk);
    an event is dispatched at a blank line once any field was given; a line starting with ':' is a comment."""

    def __init__(self) -> None:
        self._partial: list[bytes] = []  # the start of a line still to come, in the chunks it came in
        self._held_cr = False
        self._event = ""
        self._data: list[str] = []
        self._id = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._held_cr:  # the last chunk ended in CR, which ended its line: an LF now is that CR's pair
            self._held_cr = False
            chunk = chunk[1:] if chunk.startswith(b"\n") else chunk
        self._held_cr = chunk.endswith(b"\r")
        if b"\n" not in chunk and b"\r" not in chunk:
            # Inside a long line (a large event): kept, not joined to what came before and scanned again, which
            # made a large event's reading quadratic in its size.
            self._partial.append(chunk)
            return []
        lines = b"".join([*self._partial, chunk]).replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._partial = [lines.pop()]  # what follows the last line end: the start of a line still to come
        return [event for event in map(self._line, lines) if event is not None]

    def end(self) -> list[SseEvent]:
        """The stream is over: an unterminated last line still counts (it dispatches nothing: it is not blank)."""
        line, self._partial, self._held_cr = b"".join(self._partial), [], False
        event = self._line(line) if line else None
        return [event] if event is not None else []

    def _line(self, raw: bytes) -> SseEvent | None:
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if not self._event and not self._data and not self._id and self._retry is None:
                return None
            event = SseEvent("\n".join(self._data), self._event or "message", self._id, self._retry)
            self._event, self._data, self._retry = "", [], None  # the last event id lasts, as the format says
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry":
            try:
                self._retry = int(value)
            except ValueError:
                pass
        return None


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[SseEvent]:
    decoder = SseDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.end():
        yield event
