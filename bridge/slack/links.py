"""Slack's escaping and link markup undone in one pass over the text Slack sent: `&lt;`, `&gt;` and `&amp;` as
the characters, and each http, https or mailto link (`<https://example.com/docs|example.com/docs>`) as the words a
person sees (`example.com/docs`); agents echoing the markup wrote broken links. A link is read before its label is
unescaped, so a label's `>` (sent as `&gt;`) stays in it, and a link a person typed as text (sent as
`&lt;https://…&gt;`) stays text."""

from __future__ import annotations

import re

LINK = re.compile(r"<(?P<url>(?:https?|mailto):[^|>]+)(?:\|(?P<label>[^>]+))?>")  # only links people follow
_CHARS = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}  # all that Slack escapes
_ESCAPED = re.compile("|".join(_CHARS))
_MARKUP = re.compile(rf"{LINK.pattern}|{_ESCAPED.pattern}")


def unescape(text: str) -> str:
    """Slack's escaping undone in one pass, so `&amp;lt;` stays `&lt;`."""
    return _ESCAPED.sub(lambda m: _CHARS[m[0]], text)


def link_words(url: str, label: str | None) -> str:
    """A link as a person reads it: its label alone when that is the url, with or without its scheme (Slack's own
    label for a typed `example.com` or email address); another label with the url beside it, so a label naming one
    place cannot hide another."""
    if not label or label == url:
        return url
    bare = url.partition(":")[2].removeprefix("//")
    return label if label == bare else f"{label} ({url})"


def as_words(text: str) -> str:
    """`text` as Slack sent it, unescaped, each link as its words (`link_words`); other markup stays as written."""

    def word(m: re.Match[str]) -> str:
        if m["url"]:
            return link_words(unescape(m["url"]), unescape(m["label"]) if m["label"] else None)
        return _CHARS[m[0]]

    return _MARKUP.sub(word, text)
