"""Slack's markup for people, channels and groups in a message (`<@U0456EFGH>`, `<#C0999ZZZZ|deploys>`,
`<!here>`, `<!subteam^S012|@oncall>`) as the words a person sees: `@bob`, `#deploys`, `@here`, `@oncall`. Agents
read these, and an id tells them nothing of who was meant (nor can they write it back: the renderer escapes it).
Names come from the directory's cache (a lookup Slack refuses, or one it rate-limits, leaves the id). Links need
no lookup: `decide.clean_text` reads them (slack/links.py), before Slack's escaping is undone."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

Lookup = Callable[[str], Awaitable[str]]

_TOKEN = re.compile(
    r"<@(?P<user>[UW][A-Z0-9]+)(?:\|(?P<user_label>[^>]*))?>"
    r"|<#(?P<channel>[CG][A-Z0-9]+)(?:\|(?P<channel_label>[^>]*))?>"
    r"|<!(?P<special>here|channel|everyone)(?:\|[^>]*)?>"
    r"|<!subteam\^(?P<group>[A-Z0-9]+)(?:\|(?P<group_label>[^>]*))?>"
)


def _at(name: str, sign: str) -> str:
    name = " ".join(name.split()).lstrip(sign)
    return sign + name if name else ""


async def readable(text: str, user_name: Lookup, channel_name: Lookup) -> str:
    """`text` with each person, channel and group markup replaced by its name; each distinct id looked up once,
    all at once."""
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
        return _at(m["group_label"] or "", "@") or "@" + m["group"]

    return _TOKEN.sub(word, text)
