"""What every mrkdwn text the bridge produces must satisfy, shared by the unit, property and corpus tests."""

from __future__ import annotations

import re

FENCE = "```"
# The only `<…>` the renderer may produce: a link to http(s)/mailto, its label optional.
LINK = re.compile(r"<(?:https?://|mailto:)[^<>|\s]+(?:\|(?P<label>[^<>|\n]*))?>")
ENTITY = re.compile(r"&(?:amp|lt|gt);")
BROADCAST = re.compile(r"@(?:channel|here|everyone)", re.IGNORECASE)
# A URL or email in code or in a link's label, where Slack reads no mention: the words may stay whole in it.
ADDRESS = re.compile(r"(?i)(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
# What may stand before a quote's `>` on its line: indentation, a bullet or number, other quote markers.
LINE_START = re.compile(r"^(?:[ \t]+|•|\d+[.)]|>(?= |$))*", re.MULTILINE)


def _around(text: str, char: str) -> str:
    at = text.index(char)
    return text[max(0, at - 20) : at + 20]


def unsafe(text: str) -> list[str]:
    """Everything in `text` that could be a Slack control sequence, a ping, or a broken entity."""
    problems: list[str] = []
    for m in LINK.finditer(text):
        url = m.group(0)[1:].split("|", 1)[0].rstrip(">")
        if "&" in ENTITY.sub("", url):
            problems.append(f"unescaped & in link URL: {m.group(0)!r}")
    rest = LINK.sub(lambda m: m.group("label") or "", text)
    if "<" in rest:
        problems.append(f"'<' outside a link: {_around(rest, '<')!r}")
    body = LINE_START.sub("", rest)
    if ">" in body:
        problems.append(f"'>' that is not a quote marker: {_around(body, '>')!r}")
    if "&" in ENTITY.sub("", rest):
        problems.append("'&' that is not &amp; &lt; or &gt;")
    labels = " ".join(m.group("label") or "" for m in LINK.finditer(text))
    prose = CODE.sub(lambda m: ADDRESS.sub("", m.group()), LINK.sub(" ", text))
    if m := BROADCAST.search(prose + " " + ADDRESS.sub("", labels)):
        problems.append(f"a broadcast: {m.group(0)!r}")
    return problems


def balanced(text: str) -> bool:
    return text.count(FENCE) % 2 == 0


def visible(text: str) -> str:
    """Non-whitespace content with every fence removed: what splitting must keep, in order."""
    return "".join(text.replace(FENCE, "").split())


def kept(parts: list[str]) -> str:
    """What a split's parts show, together: each part's own `visible` (the fences a split adds are its own; and
    joined first, a part ending in two backticks and the next starting with one would read as a fence), without
    the backticks that close and reopen inline code at a cut (see `loses_nothing`)."""
    return "".join(visible(part) for part in parts).replace("`", "")


def _pairs(closing: str, opening: str) -> int:
    """How many emphasis markers could have been added at one cut: closing `closing`, reopened in `opening`."""
    k = 0
    while k < min(len(closing), len(opening)) and opening[k] in "_*~" and closing[-1 - k] == opening[k]:
        k += 1
    return k


def _shown_as(shown: list[str], want: str, cut_from: int = 0) -> bool:
    """Whether the parts' texts (backticks removed) read as `want` once, at each cut, some of the emphasis markers
    that may have been added there (closed at one part's end, reopened at the next one's start) are taken off.
    `cut_from` is how many markers were taken off the start of the first part."""
    first = shown[0][cut_from:]
    if len(shown) == 1:
        return first == want
    for k in range(_pairs(first, shown[1]) + 1):
        body = first[: len(first) - k]
        if want.startswith(body) and _shown_as(shown[1:], want[len(body) :], k):
            return True
    return False


def loses_nothing(parts: list[str], text: str) -> bool:
    """The parts show all of `text`, in order; of backticks, only pairs were added (inline code closed at the end
    of one part, reopened in the next); of emphasis markers, only those closing one part's emphasis and reopening
    it in the next."""
    added = sum(visible(part).count("`") for part in parts) - visible(text).count("`")
    want = visible(text).replace("`", "")
    shown = _shown_as([visible(part).replace("`", "") for part in parts] or [""], want)
    return shown and added >= 0 and added % 2 == 0


def code_closed(part: str) -> bool:
    """Whether a part ends outside inline code, as Slack reads it: backticks besides fences paired from the left on
    its last line."""
    return part[part.rfind("\n") + 1 :].replace(FENCE, "").count("`") % 2 == 0
