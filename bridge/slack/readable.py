"""Slack's markup for people, channels, groups and links in a message (`<@U0456EFGH>`, `<#C0999ZZZZ|deploys>`,
`<!here>`, `<!subteam^S012|@oncall>`, `<https://example.com/docs|example.com/docs>`) as the words a person sees:
`@bob`, `#deploys`, `@here`, `@oncall`, `example.com/docs`. Agents read these, and an id tells them nothing of who
was meant (nor can they write it back: the renderer escapes it); link markup they echo renders as a broken link.
Names come from the directory's cache (a lookup Slack refuses, or one it rate-limits, leaves the id)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

Lookup = Callable[[str], Awaitable[str]]

LINK = re.compile(r"<(?P<url>(?:https?|mailto):[^|>]+)(?:\|(?P<label>[^>]+))?>")  # only links people follow
_TOKEN = re.compile(
    r"<@(?P<user>[UW][A-Z0-9]+)(?:\|(?P<user_label>[^>]*))?>"
    r"|<#(?P<channel>[CG][A-Z0-9]+)(?:\|(?P<channel_label>[^>]*))?>"
    r"|<!(?P<special>here|channel|everyone)(?:\|[^>]*)?>"
    r"|<!subteam\^(?P<group>[A-Z0-9]+)(?:\|(?P<group_label>[^>]*))?>"
    rf"|{LINK.pattern}"
)


def link_words(url: str, label: str | None) -> str:
    """A link as a person reads it: its label alone when that is the url, with or without its scheme (Slack's own
    label for a typed `example.com` or email address); another label with the url beside it, so a label naming one
    place cannot hide another."""
    if not label or label == url:
        return url
    bare = url.partition(":")[2].removeprefix("//")
    return label if label == bare else f"{label} ({url})"


def _at(name: str, sign: str) -> str:
    name = " ".join(name.split()).lstrip(sign)
    return sign + name if name else ""


async def readable(text: str, user_name: Lookup, channel_name: Lookup) -> str:
    """`text` with each person, channel and group markup replaced by its name, and each link by its words; each
    distinct id looked up once, all at once."""
    found = list(_TOKEN.finditer(text))
    if not found:
        return text
    users = {m["user"] for m in found if m["user"] and not (m["user_label"] or "").strip()}
    channels = {m["channel"] for m in found if m["channel"] and not (m["channel_label"] or "").strip()}
    asked = [*users, *channels]
    answers = await asyncio.gather(
        *(user_name(u) for u in users), *(channel_name(c) for c in channels), return_exceptions=True
    )
    # A lookup Slack refused answers the id itself: that markup stays as written.
    names = {
        key: answer for key, answer in zip(asked, answers, strict=True) if isinstance(answer, str) and answer != key
    }

    def word(m: re.Match[str]) -> str:
        if m["user"]:
            return _at(m["user_label"] or names.get(m["user"], ""), "@") or m[0]
        if m["channel"]:
            return _at(m["channel_label"] or names.get(m["channel"], ""), "#") or m[0]
        if m["special"]:
            return "@" + m["special"]
        if m["url"]:
            return link_words(m["url"], m["label"])
        return _at(m["group_label"] or "", "@") or "@" + m["group"]

    return _TOKEN.sub(word, text)
