"""A turn's shared files made ready for the agents, once per turn: images fetched and checked, other files
described (small text files inlined where the operator allows it), and the files that could not be fetched named.

What an agent reads stays unforgeable (letta/quoting.py): each file is one JSON line under a header, and an
inlined file's text sits in a fence longer than any run of backticks inside it. The block goes ahead of the
person's message, which stays last. An image is sent only when its bytes are one of the types both Letta wires take
(reference/letta/README.md §18, app-server/README.md §18), whatever Slack called it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bridge.domain import Image, SharedFile
from bridge.letta.quoting import block
from bridge.slack.files import TOO_BIG, FetchError
from bridge.word_lists import and_list

Fetch = Callable[[SharedFile, int], Awaitable[bytes]]

FILES_HEADER = "Files shared with this message:"
INLINED_HEADER = "The text of {name}:"
NOTE = "I could not pass on {files}; the message went to the agents without {them}."
# The first bytes of each image type both Letta wires accept.
_MAGIC: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("image/png", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    ("image/jpeg", lambda b: b.startswith(b"\xff\xd8\xff")),
    ("image/gif", lambda b: b[:6] in (b"GIF87a", b"GIF89a")),
    ("image/webp", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
)
IMAGE_TYPES = frozenset(kind for kind, _ in _MAGIC)
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/x-yaml", "application/yaml"})
_TEXT_FILETYPES = frozenset({"text", "markdown", "csv", "json", "yaml", "xml", "python", "javascript", "shell"})


@dataclass(frozen=True)
class Prepared:
    """What the turn's files became: the images, the text block the agents read, and the files the thread is told
    could not be passed on (name and why)."""

    images: tuple[Image, ...] = ()
    text: str = ""
    missing: tuple[tuple[str, str], ...] = ()

    def dump(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def load(cls, body: str) -> Prepared:
        raw = json.loads(body)
        images = tuple(Image(**i) for i in raw["images"])
        return cls(images, raw["text"], tuple((name, why) for name, why in raw["missing"]))

    def note(self) -> str:
        """The thread's note on the files that stayed behind, in plain words ("" when none did)."""
        if not self.missing:
            return ""
        named = [f"{name} ({why})" for name, why in self.missing]
        return NOTE.format(files=and_list(named), them="it" if len(named) == 1 else "them")


def size_words(size: int, digits: int = 1) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.{digits}f} MB"
    if size >= 1000:
        return f"{size / 1000:.{digits - 1}f} KB"
    return f"{size} bytes"


def too_big(size: int, limit: int) -> str:
    """Why a file over the limit stayed behind, its size and the limit told apart (5.04 MB against 5.00 MB, not
    5.0 MB against 5.0 MB); Slack's size is not quoted when it is not over the limit (the download was)."""
    if size <= limit:
        return f"it is bigger than the limit of {size_words(limit)}"
    for digits in (1, 2, 3):
        shown, most = size_words(size, digits), size_words(limit, digits)
        if shown != most:
            return f"it is too big: {shown}, the limit is {most}"
    return f"it is too big: {size:,} bytes, the limit is {limit:,} bytes"


def image_kind(file: SharedFile) -> str:
    """An image type's short name (HEIC, SVG, TIFF) for the words said about it."""
    subtype = file.mimetype.lower().partition("/")[2].partition("+")[0]
    return (file.filetype or subtype or "unknown").upper()


def describe(file: SharedFile, status: str = "") -> str:
    """One file as one JSON line: name, type, size, link, and what became of it."""
    line: dict[str, str] = {"file": file.name, "type": file.mimetype or file.filetype or "unknown"}
    if file.size:
        line["size"] = size_words(file.size)
    if file.permalink:
        line["link"] = file.permalink
    if status:
        line["status"] = status
    return json.dumps(line, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def image_type(data: bytes) -> str | None:
    return next((kind for kind, match in _MAGIC if match(data)), None)


def is_text(file: SharedFile) -> bool:
    kind = file.mimetype.lower()
    return kind.startswith("text/") or kind in _TEXT_TYPES or file.filetype.lower() in _TEXT_FILETYPES


def fenced(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


NOT_SHARED = "Slack did not share it with the bot"
LEFT = "not passed on: the agents are given images only"
LEFT_TEXT = "not passed on: the agents are given images and text files only"


async def prepare(
    files: Sequence[SharedFile], fetch: Fetch, max_bytes: int, inline_text: bool = False, inline_chars: int = 4000
) -> Prepared:
    """Fetch what the agents get as content (images; text files when inlining is on) and describe every file."""
    images: list[Image] = []
    lines: list[str] = []
    inlined: list[str] = []
    missing: list[tuple[str, str]] = []
    for file in files:
        if not file.url:  # a Slack Connect file of another organisation: its details are not the bot's to read
            missing.append((file.name, NOT_SHARED))
            lines.append(describe(file, "not passed on: " + NOT_SHARED))
            continue
        wanted = file.mimetype.lower() in IMAGE_TYPES or (inline_text and is_text(file))
        if not wanted and file.mimetype.lower().startswith("image/"):  # a picture the person expects seen
            why = f"it is a {image_kind(file)} image; the agents read PNG, JPEG, GIF or WebP only"
            missing.append((file.name, why))
            lines.append(describe(file, "not passed on: " + why))
            continue
        if not wanted:
            lines.append(describe(file, LEFT_TEXT if inline_text else LEFT))
            continue
        try:
            data = await fetch(file, max_bytes)
        except FetchError as error:
            big = error.reason == TOO_BIG and file.size
            why = too_big(file.size, max_bytes) if big else error.reason
            missing.append((file.name, why))
            lines.append(describe(file, "not passed on: " + why))
            continue
        if file.mimetype.lower() in IMAGE_TYPES:
            kind = image_type(data)
            if kind is None:
                missing.append((file.name, "it is not an image the agents can read"))
                lines.append(describe(file, "not passed on: not a PNG, JPEG, GIF or WebP image"))
                continue
            images.append(Image(kind, base64.b64encode(data).decode("ascii"), file.name))
            lines.append(describe(file, f"attached as image {len(images)}"))
            continue
        text = data.decode("utf-8", errors="replace")
        clipped = len(text) > inline_chars
        lines.append(describe(file, "inlined below" + (f", its first {inline_chars} characters" if clipped else "")))
        inlined.append(INLINED_HEADER.format(name=json.dumps(file.name, ensure_ascii=False)))
        inlined.append(fenced(text[:inline_chars]))
    if not lines:
        return Prepared()
    text = "\n".join([block(FILES_HEADER, lines), *inlined]) + "\n\n"
    return Prepared(tuple(images), text, tuple(missing))
