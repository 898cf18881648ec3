"""Pure: an agent's Markdown as Slack mrkdwn, and the escaping that keeps agent text from pinging anyone.

Agents write CommonMark (plus GFM tables and strikethrough); Slack's classic `text` is mrkdwn, which has
its own emphasis markers, `<url|label>` links, no headings and no tables. The Markdown is parsed by
markdown-it-py and the token tree is rendered here, so that every text node and every piece of code goes
through `escape` exactly once and the only `<…>` sequences in the output are links this module made.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from bridge.slack.addresses import disguised

# No word boundary: whether Slack would ping `@here_` or `@channel-ops` is unknown, so those are broken too.
_BROADCAST = re.compile(r"@(channel|here|everyone)", re.IGNORECASE)
# A URL or an email as Slack links it in text: up to a space, a `<`, `>` or backtick; `_bare` trims what ends a
# sentence rather than the address.
_BARE = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>`]+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_TRAILING = ".,:;!?'\"*_~"
_FENCE_RUN = re.compile(r"`{3,}")
_WEB_SCHEMES = ("http://", "https://")
_MAILTO = re.compile(r"mailto:[\w.+-]+@[\w-]+(?:\.[\w-]+)+(?:\?[^\s|<>]*)?", re.IGNORECASE)
# A span mrkdwn reads as emphasis: a marker not inside a word, then a non-space, ..., a non-space, the marker; on one
# line. Openings and closings are found apart and paired in one pass: a regex for the span retried at each opening
# took quadratic time on a long line of openings that never close.
_EMPHASIS = tuple(
    (re.compile(rf"(?<![\w{re.escape(m)}]){re.escape(m)}(?=[^\s{re.escape(m)}])"),
     re.compile(rf"(?<=[^\s{re.escape(m)}]){re.escape(m)}(?![\w{re.escape(m)}])"), twin)
    for m, twin in (("*", "∗"), ("_", "＿"), ("~", "∼"))
)
_PIPE = "∣"  # stands in for `|`, which would end a link's URL or label early
_BACKTICK = "ˋ"  # modifier letter grave accent: stands in for a literal backtick (in text, in inline code)
_FENCE = "```"
_RULE = "———"
_BULLET = "•"

# Raw HTML off: markdown-it then keeps it as text, which `escape` shows literally. Past `maxNesting` the
# parser silently drops the rest of the input; instead, nesting is left to Python's recursion limit and a
# reply nested too deep for it is shown as escaped text (see `to_mrkdwn`).
_PARSER = MarkdownIt("commonmark", {"html": False, "maxNesting": 1_000_000}).enable(["table", "strikethrough"])


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _bare(text: str) -> list[tuple[int, int]]:
    """Where the URLs and emails in a text are, without the punctuation after them (a `)` only when unmatched)."""
    spans: list[tuple[int, int]] = []
    for m in _BARE.finditer(text):
        start, end = m.span()
        opened, closed = text.count("(", start, end), text.count(")", start, end)  # once: it may end in many `)`
        while end > start and (text[end - 1] in _TRAILING or (text[end - 1] == ")" and opened < closed)):
            closed -= text[end - 1] == ")"
            end -= 1
        spans.append((start, end))
    return spans


def _defuse(text: str, keep_urls: bool = False) -> str:
    """A zero-width space after the `@` of each broadcast word; with `keep_urls`, not inside a URL or an email,
    where it would break the address (only where Slack reads no mention: code, a link's label)."""
    spans = _bare(text) if keep_urls else []
    return _BROADCAST.sub(
        lambda m: m.group() if any(a <= m.start() < b for a, b in spans) else "@\u200b" + m.group(1), text
    )


def escape(text: str) -> str:
    """Escape &, < and > (so no `<!channel>` or `<@U…>` can be formed) and defuse plain @channel/@here."""
    return _entities(_defuse(text))


def escape_within(text: str, limit: int) -> str:
    """`escape`d, then at most `limit` characters (an ellipsis ending what was cut), never cut inside an entity:
    Slack's limits count the escaped text."""
    safe = escape(text)
    if len(safe) <= limit:
        return safe
    out = ""
    for char in _defuse(text):
        piece = _entities(char)
        if len(out) + len(piece) + 1 > limit:
            break
        out += piece
    return out.rstrip() + "…"


def _safe(text: str, keep_urls: bool = False) -> str:
    """`escape` (see `_defuse` for `keep_urls`), and break runs of three backticks, which would open or close a
    code block in Slack."""
    return _FENCE_RUN.sub(lambda m: "\u200b".join(m.group()), _entities(_defuse(text, keep_urls)))


def _unpaired(text: str) -> str:
    """Literal `*`, `_` and `~` (Markdown's `\\*`, or markers CommonMark left as text) that mrkdwn would pair into
    bold, italics or strikethrough, as look-alikes: mrkdwn has no escape. A literal backtick too, always: Slack pairs
    backticks from the left across a message, so one in text could pair with inline code's and leave that code's
    content (a URL holding @channel, say) as text."""
    for opening, closing, twin in _EMPHASIS:
        text = _twinned(text, opening, closing, twin)
    return text.replace("`", _BACKTICK)


def _twinned(text: str, opening: re.Pattern[str], closing: re.Pattern[str], twin: str) -> str:
    """Each span's two markers as `twin`, spans taken from the left as the regex for a span would: an opening pairs
    with the first closing on its line three or more characters on, else with one two characters on; an opening
    with none ends its line's spans."""
    closings = [m.start() for m in closing.finditer(text)]
    ends = [m.start() for m in re.finditer("\n", text)] + [len(text)]
    chars = list(text)
    after = 0  # the closings before it are taken or passed
    line = 0
    free = 0  # the next opening may start here: after the last span
    for found in opening.finditer(text):
        start = found.start()
        if start < free:
            continue
        while ends[line] < start:
            line += 1
        while after < len(closings) and closings[after] < start + 2:
            after += 1
        if after == len(closings) or closings[after] > ends[line]:
            free = ends[line]  # no closing on this line past this opening: none for a later one either
            continue
        if closings[after] == start + 2 and after + 1 < len(closings) and closings[after + 1] <= ends[line]:
            after += 1  # the regex's span tries a longer inside first: `*a* *b*` is one span
        chars[start] = chars[closings[after]] = twin
        free = closings[after] + 1
        after += 1
    return "".join(chars)


def _text(text: str) -> str:
    """A text node: `_safe` with `_unpaired` markers, except that a bare URL or email is kept as it is (a marker in
    it is part of the address), and one holding a broadcast word becomes a link made here: defused, it would
    break; left to Slack to link, whether Slack reads a mention in it first is not documented."""
    out: list[str] = []
    done = 0
    for start, end in _bare(text):
        address = text[start:end]
        before = _safe(_unpaired(text[done:start]))
        if before.endswith("@") and _BROADCAST.match("@" + address):
            before += "\u200b"  # `@everyone@corp.com`: the email starts after a broadcast word's `@`
        out.append(before)
        if _BROADCAST.search(address):
            url = "http://" + address if address[:4].lower() == "www." else address
            url = url if "://" in url else "mailto:" + url
            out.append(_link(url, address))
        else:
            out.append(_safe(address))
        done = end
    return "".join(out) + _safe(_unpaired(text[done:]))


def _code_span(text: str) -> str:
    """Inline code's content between its two backticks. Slack's inline code cannot hold a backtick: one ends it
    (and the rest, a URL holding @channel say, would be text), and runs of them read as a code block's fence. So
    its own backticks are look-alikes."""
    return _entities(_defuse(text, keep_urls=True)).replace("`", _BACKTICK)


def _linkable(url: str) -> bool:
    """http(s), or mailto to a plain address (an autolink such as `<!subteam^S1|@x>` parses as an email)."""
    return url.lower().startswith(_WEB_SCHEMES) or _MAILTO.fullmatch(url) is not None


def _url(url: str) -> str:
    """A URL for inside `<…|…>`: escaped, and a `|` (markdown-it already percent-encodes it) cannot end it."""
    return _entities(url.replace("|", "%7C"))


def _label(text: str) -> str:
    return _safe(" ".join(text.split()), keep_urls=True).replace("|", _PIPE)


def _link(url: str, label: str) -> str:
    """`<url|label>`, or `<url>` when the label would only repeat the address. A label that names another address
    than the link's (`[https://good](https://evil)`) is shown as text with the real address after it."""
    mailto = url.lower().startswith("mailto:")
    if mailto:
        label = label or url[len("mailto:") :]
    elif not label or label == url:
        return f"<{_url(url)}>"
    if disguised(url, label):
        shown = f"<{_url(url)}|{_label(url[len('mailto:'):])}>" if mailto else f"<{_url(url)}>"
        return f"{_safe(label)} ({shown})"
    return f"<{_url(url)}|{_label(label)}>"


@dataclass
class _Inline:
    """How inline content is being rendered: `plain` strips all markup (link labels, table cells);
    `open` holds the emphasis markers already in force, since mrkdwn cannot nest the same marker."""

    plain: bool = False
    open: set[str] = field(default_factory=set)
    addresses: bool = True  # in plain text, show a link's address after its label


def _inline(node: SyntaxTreeNode, ctx: _Inline) -> str:
    """Inline children as mrkdwn (escaped), or as raw plain text when `ctx.plain` (the caller escapes)."""
    out: list[str] = []
    for index, child in enumerate(node.children):
        kind = child.type
        if kind == "text":
            out.append(child.content if ctx.plain else _text(child.content))
        elif kind in ("softbreak", "hardbreak"):
            out.append(" " if ctx.plain else "\n")
        elif kind == "code_inline":
            out.append(child.content if ctx.plain else f"`{_code_span(child.content)}`")
        elif kind in ("strong", "em", "s") and _in_word(node.children, index):
            # mrkdwn emphasises whole words only: `2*3*4` would show as `2_3_4` (plain text: `234`).
            out.append(child.markup + _inline(child, ctx) + child.markup)
        elif kind in ("strong", "em", "s"):
            marker = {"strong": "*", "em": "_", "s": "~"}[kind]
            if ctx.plain or marker in ctx.open:
                out.append(_inline(child, ctx))
            else:
                inner = _inline(child, _Inline(False, ctx.open | {marker}))
                # mrkdwn emphasis does not span lines: mark each line of a hard-broken span on its own.
                out.append("\n".join(f"{marker}{ln}{marker}" if ln.strip() else ln for ln in inner.split("\n")))
        elif kind in ("link", "image"):
            out.append(_link_or_image(child, ctx))
        elif child.children:
            out.append(_inline(child, ctx))
        else:
            out.append(child.content if ctx.plain else _safe(child.content))
    return "".join(out)


def _in_word(siblings: list[SyntaxTreeNode], index: int) -> bool:
    """Whether an emphasis span touches a Latin letter or a digit on either side (CommonMark allows `*` inside
    words: `2*3*4`). Next to other scripts (Chinese, Japanese: no spaces between words) it stays emphasis."""
    before = siblings[index - 1] if index > 0 else None
    after = siblings[index + 1] if index + 1 < len(siblings) else None
    return (before is not None and before.type == "text" and _word_char(before.content[-1:])) or (
        after is not None and after.type == "text" and _word_char(after.content[:1])
    )


def _word_char(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _link_or_image(node: SyntaxTreeNode, ctx: _Inline) -> str:
    """Only http(s) and mailto become Slack links; any other target is shown as text next to its label."""
    url = str(node.attrs.get("href" if node.type == "link" else "src", ""))
    label = _plain(node, addresses=False)
    if ctx.plain or not _linkable(url):
        if node.markup == "autolink":
            text = label if _linkable(url) else f"<{label}>"
        elif node.type == "image" and url.lower().startswith("data:"):
            text = label or "image"
        else:
            addressed = ctx.addresses and label and url and label != url
            text = f"{label} ({url})" if addressed else (label or url)
        return text if ctx.plain else _safe(text)
    return _link(url, label)


# A rendered line; `verbatim` lines (code and table blocks) are never indented or quoted, so that each
# fence stays alone at the start of its line and code keeps its exact content.
@dataclass(frozen=True)
class _Line:
    text: str
    verbatim: bool = False


def _text_lines(text: str) -> list[_Line]:
    return [_Line(line) for line in text.split("\n")]


def _code_lines(content: str) -> list[_Line]:
    body = content[:-1] if content.endswith("\n") else content
    lines = _safe(body, keep_urls=True).split("\n")
    return [_Line(_FENCE, True), *(_Line(line, True) for line in lines), _Line(_FENCE, True)]


def _blocks(nodes: list[SyntaxTreeNode], gap: bool = True) -> list[_Line]:
    """Blocks one after another, a blank line between them unless `gap` is off (tight list items)."""
    lines: list[_Line] = []
    for node in nodes:
        block = _block(node)
        if not block:
            continue
        if lines and gap:
            lines.append(_Line(""))
        lines.extend(block)
    return lines


def _block(node: SyntaxTreeNode) -> list[_Line]:
    kind = node.type
    if kind == "paragraph":
        return _text_lines(_inline(node.children[0], _Inline()))
    if kind == "heading":
        text = _inline(node.children[0], _Inline(open={"*"})).strip()
        return [_Line(f"*{line}*") for line in text.split("\n") if line.strip()]
    if kind in ("fence", "code_block"):
        return _code_lines(node.content)
    if kind in ("bullet_list", "ordered_list"):
        return _list(node)
    if kind == "blockquote":
        # A blank line ends Slack's quote, so a quote of two paragraphs shows as two quotes one after another.
        return [line if line.verbatim or not line.text else _Line(f"> {line.text}") for line in _blocks(node.children)]
    if kind == "hr":
        return [_Line(_RULE)]
    if kind == "table":
        return _table(node)
    if kind == "inline":
        return _text_lines(_inline(node, _Inline()))
    if node.children:
        return _blocks(node.children)
    return _text_lines(_safe(node.content.rstrip("\n"))) if node.content.strip() else []


def _list(node: SyntaxTreeNode) -> list[_Line]:
    """`• item` or `3. item`; an item's further lines (and nested lists) two spaces further in."""
    tight = all(p.hidden for item in node.children for p in item.children if p.type == "paragraph")
    start = int(str(node.attrs.get("start", 1)))
    lines: list[_Line] = []
    for index, item in enumerate(node.children):
        if lines and not tight:
            lines.append(_Line(""))
        marker = _BULLET if node.type == "bullet_list" else f"{start + index}{item.markup or '.'}"
        body = _blocks(item.children, gap=not tight)
        if not body or body[0].verbatim:
            lines.append(_Line(marker))
        else:
            lines.append(_Line(f"{marker} {body[0].text}"))
            body = body[1:]
        lines.extend(line if line.verbatim or not line.text else _Line("  " + line.text) for line in body)
    return lines


def _width(text: str) -> int:
    """Columns a monospace font gives the text: wide East Asian characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _plain(node: SyntaxTreeNode, addresses: bool = True) -> str:
    """Inline content without markup, whitespace folded, not escaped: link labels and table cells."""
    return " ".join(_inline(node, _Inline(plain=True, addresses=addresses)).split())


def _align(text: str, style: str, width: int) -> str:
    pad = " " * (width - _width(text))
    if "right" in style:
        return pad + text
    if "center" in style:
        return pad[: len(pad) // 2] + text + pad[len(pad) // 2 :]
    return text + pad


def _table(node: SyntaxTreeNode) -> list[_Line]:
    """mrkdwn has no tables: a code block with the columns padded to line up (escaped after padding,
    since Slack shows `&amp;` as one character)."""
    rows = [
        [(_plain(cell.children[0]) if cell.children else "", str(cell.attrs.get("style", ""))) for cell in tr.children]
        for section in node.children
        for tr in section.children
    ]
    if not rows:
        return []
    columns = max(len(r) for r in rows)
    widths = [max((_width(r[i][0]) for r in rows if i < len(r)), default=0) for i in range(columns)]
    out = [" | ".join(_align(t, s, widths[i]) for i, (t, s) in enumerate(r)).rstrip() for r in rows]
    out.insert(1, "-+-".join("-" * max(w, 1) for w in widths))
    return [_Line(_FENCE, True), *(_Line(_safe(line, keep_urls=True), True) for line in out), _Line(_FENCE, True)]


def to_mrkdwn(markdown: str) -> str:
    """Slack mrkdwn for an agent's Markdown: formatting kept where mrkdwn has it, everything else as
    readable text, and no `<…>` sequence except links to http(s)/mailto that this function made."""
    try:
        lines = _blocks(SyntaxTreeNode(_PARSER.parse(markdown)).children)
    except RecursionError:
        return _safe(markdown).strip()
    return "\n".join(line.text.rstrip() if not line.verbatim else line.text for line in lines).strip("\n")


def _plain_text(node: SyntaxTreeNode) -> list[str]:
    if node.type == "inline":
        return [_inline(node, _Inline(plain=True, addresses=False))]
    if node.children or node.is_root:
        return [text for child in node.children for text in _plain_text(child)]
    return [node.content]  # code, or empty (a rule)


def fallback_text(markdown: str, limit: int = 150) -> str:
    """A short notification text (push, unread list): markup stripped, whitespace folded, escaped,
    at most `limit` characters and never cut inside an entity."""
    try:
        texts = _plain_text(SyntaxTreeNode(_PARSER.parse(markdown)))
    except RecursionError:
        texts = [markdown]
    return escape_within(" ".join(" ".join(texts).split()), limit)
