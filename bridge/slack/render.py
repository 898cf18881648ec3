"""Pure: an agent's reply becomes Slack message texts that are mrkdwn, escaped, pinged by no one and split to fit.

The Markdown-to-mrkdwn conversion and the escaping live in `bridge.slack.markdown`; this module cuts the
result into messages without breaking what mrkdwn cannot carry across two messages: an entity such as
`&amp;`, a `<url|label>` link, or a code block, inline code or emphasis (closed at the end of one part, reopened
in the next).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from bridge.slack.decide import INVISIBLE
from bridge.slack.markdown import escape, fallback_text, to_mrkdwn

__all__ = [
    "MAX_TEXT", "escape", "fallback_text", "named", "notes_blocks", "reply_texts", "shows_nothing", "split",
    "split_mrkdwn", "to_mrkdwn",
]

# Slack truncates chat.postMessage text past 40,000 characters and advises ~4,000; stay below, at paragraphs.
MAX_TEXT = 3500
MIN_LIMIT = 16  # room for a reopened and a closed fence around a few characters of code

_FENCE = "```"
_OPEN = _FENCE + "\n"
_CLOSE = "\n" + _FENCE
_ENTITY = re.compile(r"&(?:amp|lt|gt);")
_JOINER = "\u200d"
# An emoji written as its shortcode (`:tada:`, `:+1::skin-tone-3:`): cut in two, each half shows as words.
_SHORTCODE = re.compile(r":[a-z0-9_+'-]{1,100}:(?::skin-tone-[2-6]:)?")
_LONGEST_CHARACTER = 128  # code points: past the longest shortcode (with its skin tone) and emoji sequence
_EMPHASIS = "_*~"
_SKIPPED = re.compile(r"`[^`\n]*`|<[^<>\n]*>")  # inline code and links: markers in them are not emphasis


def _fence_open(text: str) -> bool:
    return text.count(_FENCE) % 2 == 1


def _code_open(part: str, rest: str, end: int, nxt: int) -> bool:
    """Whether a cut at `end` (the rest from `nxt`) falls inside inline code: in the middle of a line whose part
    so far holds an odd number of backticks besides fences (Slack pairs them from the left, on one line)."""
    gap = rest[len(rest[:end].rstrip()) : len(rest) - len(rest[nxt:].lstrip())]
    return "\n" not in gap and part[part.rfind("\n") + 1 :].replace(_FENCE, "").count("`") % 2 == 1


def _joins_back(char: str) -> bool:
    """Whether a character belongs to the one before it on screen: a mark (accent, vowel sign), a joiner, a
    variation selector, a skin tone, a tag (of a subdivision flag)."""
    return (
        unicodedata.category(char)[0] == "M"
        or char in _JOINER
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or "\U000e0020" <= char <= "\U000e007f"
    )


def _regional(char: str) -> bool:
    return "\U0001f1e6" <= char <= "\U0001f1ff"


def _inside_character(text: str, at: int) -> bool:
    """Whether a cut before `text[at]` would split what a reader sees as one character (a flag is two regional
    indicators, counted in pairs from the start of their run)."""
    if _joins_back(text[at]) or text[at - 1] in _JOINER:
        return True
    if not _regional(text[at]):
        return False
    run = at
    while run > 0 and _regional(text[run - 1]):
        run -= 1
    return (at - run) % 2 == 1


def _shortcode_start(text: str, at: int, lo: int) -> int:
    """The start of the emoji shortcode a cut before `text[at]` would fall inside, else `at`. Shortcodes are read
    from well before the cut: a run of them pairs its colons the same way from wherever it is read."""
    for match in _SHORTCODE.finditer(text, max(lo, at - 250), at + 120):
        if match.start() >= at:
            break
        if at < match.end() and match.start() > lo + 1:
            return match.start()
    return at


def _hard_cut(text: str, at: int, lo: int) -> int:
    """Move a cut in the middle of a word back so it is not inside an entity, a run of backticks, or a character
    made of several code points (an emoji sequence, a letter and its marks). A run with no such place within
    _LONGEST_CHARACTER of the cut (a run of joiners, `:a:a:a…` read as shortcodes) is cut where it is, out of an
    entity only: moved further back, each part would be shorter, down to a message a character."""
    first = at
    while True:
        if first - at > _LONGEST_CHARACTER or (at <= lo + 1 < first):
            return _out_of_entity(text, first, lo)
        before = at
        at = _out_of_entity(text, at, lo)
        while at > lo + 1 and text[at - 1] == "`" == text[at]:
            at -= 1
        while at > lo + 1 and _inside_character(text, at):
            at -= 1
        at = _shortcode_start(text, at, lo)
        if at == before:
            return at


def _out_of_entity(text: str, at: int, lo: int) -> int:
    amp = text.rfind("&", max(lo + 1, at - 4), at)
    if amp != -1 and (m := _ENTITY.match(text, amp)) and m.end() > at:
        return amp
    return at


def _cut(text: str, window: int, lo: int = 0) -> tuple[int, int]:
    """(end of this part, start of the rest) for a part of at most `window` characters that ends after
    `lo`: at a paragraph break, else a line break, else a space, each looked for in the second half of the
    window first (a short part wastes a message), else mid-word; never inside a link."""
    half = max(lo + 1, window // 2)
    for start, sep in ((half, "\n\n"), (half, "\n"), (half, " "), (lo + 1, "\n"), (lo + 1, " ")):
        at = text.rfind(sep, start, window + len(sep))
        if at > lo:
            end, rest = at, at + len(sep)
            break
    else:
        end = rest = _hard_cut(text, window, lo)
    link = text.rfind("<", lo, end)
    if link != -1 and ">" not in text[link:end]:
        if link > lo:
            return _cut(text, link, lo)  # end this part before the link
        close = text.find(">", link)
        if 0 <= close < window:
            return _cut(text, window, close)  # the link opens the part: end it after the link
    return end, rest


def _emphasis_open(line: str, after: str) -> str:
    """The emphasis markers open at the end of `line` (a part's last line) that `after` (the rest of that line,
    in the next part) closes, in the order they opened. Emphasis never spans lines, so only this line counts;
    markers in inline code or a link are not emphasis, and a marker never closed is a literal one. A link longer
    than a part is cut anyway: nothing is added inside it."""
    opened = ""
    masked = _SKIPPED.sub(lambda m: "\0" * len(m.group()), line)
    if "<" in masked:
        return ""
    for i, char in enumerate(masked):
        if char not in _EMPHASIS:
            continue
        before, nxt = masked[i - 1] if i else " ", masked[i + 1] if i + 1 < len(masked) else " "
        if char in opened:
            if not before.isspace() and not nxt.isalnum():
                opened = opened[: opened.index(char)]  # a closer also ends what opened inside it
        elif not before.isalnum() and not nxt.isspace():
            opened += char
    if not opened:  # the rest of the line, which may be long, is read only when something is open
        return ""
    masked = _SKIPPED.sub(lambda m: "\0" * len(m.group()), after)
    closes = {
        char for i, char in enumerate(masked) if char in _EMPHASIS and i > 0 and not masked[i - 1].isspace()
        and (i + 1 == len(masked) or not masked[i + 1].isalnum())
    }
    kept = ""
    for char in opened:
        if char not in closes:
            break
        kept += char
    return kept


def _part(rest: str, head: str, budget: int, reopen: bool) -> tuple[str, int, bool, bool]:
    """(this part's text after `head`, where the rest starts, whether a code block and whether inline code are
    open at the cut) for a part of at most `budget` characters after `head`."""
    end, nxt = _cut(rest, budget)
    if reopen == _fence_open(rest[:end]) and _code_open(head + rest[:end], rest, end, nxt):
        end, nxt = _cut(rest, budget - 1)  # room for the backtick that closes the inline code
    if reopen != _fence_open(rest[:end]):
        # Inside a code block at the cut: leave room for the closing fence.
        end, nxt = _cut(rest, budget - len(_CLOSE))
        opener = rest.rfind(_FENCE, 0, end)
        if reopen != _fence_open(rest[:end]) and opener != -1 and not rest[opener + 3 : end].strip():
            # The block would open at the very end of this part: start it in the next one instead.
            if rest[:opener].strip():
                end = nxt = opener
            else:
                end, nxt = _cut(rest, budget - len(_CLOSE), opener + len(_FENCE))
    inside = reopen != _fence_open(rest[:end])
    chunk = rest[:end].rstrip()
    opens_last = chunk.endswith("`") and not chunk.endswith("``") and chunk[:-1].strip()
    if not inside and opens_last and _code_open(head + chunk, rest, end, nxt):
        nxt, chunk = len(chunk) - 1, chunk[:-1].rstrip()  # inline code would open at the very end: start it next
    if inside:
        after = rest[nxt:].lstrip()
        if after.startswith(_FENCE):  # the block's own closing fence is next: take it instead of adding one
            nxt = len(rest) - len(after) + len(_FENCE)
            inside = False
        chunk += _CLOSE
    code = not inside and _code_open(head + chunk, rest, len(chunk), nxt) and not chunk.endswith("`")
    if not inside:
        nxt = len(rest) - len(rest[nxt:].lstrip())
    if code and rest.startswith("``", nxt):  # a run that Slack reads its own way: left as it is
        code = False
    elif code and rest.startswith("`", nxt):  # the span closes right after the cut: its backtick ends this part
        chunk, nxt, code = chunk + "`", len(rest) - len(rest[nxt + 1 :].lstrip()), False
    elif code:
        chunk += "`"
    return chunk, nxt, inside, code


def split_mrkdwn(text: str, limit: int) -> list[str]:
    """Split mrkdwn into parts of at most `limit` characters, at paragraph, then line, then word boundaries.

    A code block, inline code or emphasis cut in two is closed at the end of one part and reopened at the start
    of the next, so each part renders on its own. Only whitespace at the cuts is dropped.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT}")
    parts: list[str] = []
    rest = text.strip()
    reopen = code = False
    emphasis = ""
    while rest.strip():
        head = _OPEN if reopen else emphasis + ("`" if code else "")
        budget = limit - len(head)
        if len(rest) <= budget:
            parts.append(head + rest)
            break
        reserve = 0
        while True:
            chunk, nxt, inside, code = _part(rest, head, budget - reserve, reopen)
            line = (head + chunk)[(head + chunk).rfind("\n") + 1 :]
            cut_in_line = "\n" not in rest[len(rest[:nxt].rstrip()) : nxt] and not rest[nxt:].startswith("\n")
            after = ("`" if code else "") + rest[nxt:].split("\n", 1)[0]
            emphasis = _emphasis_open(line, after) if not inside and cut_in_line else ""
            if len(head + chunk) + len(emphasis) <= limit:
                break
            if reserve >= budget - MIN_LIMIT // 2:  # no room left to close it: the limit comes first
                emphasis = ""
                break
            reserve = max(reserve + 1, len(emphasis))  # room for the markers that close the emphasis
        parts.append(head + chunk + emphasis[::-1])
        rest = rest[nxt:]
        reopen = inside
    return parts


def split(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split already escaped text (a bridge notice) into messages; see `split_mrkdwn`."""
    return split_mrkdwn(text, limit)


def named(agent_name: str, part: str) -> str:
    """A part led by the agent's name in bold (no custom username); a quote or a code block must start its own line
    to be one."""
    return name_prefix(agent_name) + ("\n" if part.startswith((">", _FENCE)) else "") + part


def name_prefix(agent_name: str) -> str:
    return f"*{escape(agent_name)}*: "


def reply_texts(agent_name: str, text: str, named_by_username: bool) -> list[str]:
    """Message texts for one agent's Markdown reply; without a custom username the name leads in bold."""
    if named_by_username:
        return split_mrkdwn(to_mrkdwn(text), MAX_TEXT - 1)
    parts = split_mrkdwn(to_mrkdwn(text), MAX_TEXT - len(name_prefix(agent_name)) - 1)
    return [named(agent_name, part) for part in parts]


def shows_nothing(text: str) -> bool:
    """Whether a reply would show no text in Slack: Markdown that renders to nothing (`[]()`, an empty heading)
    or only whitespace and invisible characters. Such a reply is said to be empty rather than posted."""
    return not INVISIBLE.sub("", to_mrkdwn(text)).strip()


NOTE_MARK = {"reasoning": ":thought_balloon:", "tool": ":wrench:"}
NOTE_CHARS = 300
NOTES_PER_BLOCK = 10  # a context block's element limit


# The end of a tool note, `name(arguments) → status`: its closing parenthesis and outcome, if the call has one.
_CALL_END = re.compile(r"\)(?: → \w+)?$")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_call(text: str, limit: int) -> str:
    """A tool note clipped in its arguments, so that how the call ended (` → error`) is still shown."""
    end = _CALL_END.search(text)
    if len(text) <= limit or end is None or len(end.group()) >= limit // 2:
        return clip(text, limit)
    return clip(text[: end.start()], limit - len(end.group())) + end.group()


def notes_blocks(notes: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Context blocks, one line per reasoning step or tool call, each clipped: compact by design."""
    elements: list[dict[str, Any]] = []
    for kind, text in notes:
        clipped = escape((_clip_call if kind == "tool" else clip)(" ".join(text.split()), NOTE_CHARS))
        body = "`" + clipped.replace("`", "'") + "`" if kind == "tool" else f"_{clipped}_"
        elements.append({"type": "mrkdwn", "text": f"{NOTE_MARK.get(kind, '•')} {body}"})
    shown = elements[: NOTES_PER_BLOCK * 5]  # at most five blocks under one reply
    if len(elements) > len(shown):
        shown[-1] = {"type": "mrkdwn", "text": f"… and {len(elements) - len(shown) + 1} more"}
    return [
        {"type": "context", "elements": shown[i : i + NOTES_PER_BLOCK]} for i in range(0, len(shown), NOTES_PER_BLOCK)
    ]
