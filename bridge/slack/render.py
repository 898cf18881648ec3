"""Pure: an agent's reply becomes Slack message texts that are escaped, pinged by no one and split to fit."""

from __future__ import annotations

import re

# Slack truncates chat.postMessage text past 40,000 characters; stay well below, at paragraph breaks.
MAX_TEXT = 3500

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)


def escape(text: str) -> str:
    """Escape &, < and > (so no `<!channel>` or `<@U…>` can be formed) and defuse plain @channel/@here."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@\u200b" + m.group(1), text)


def split(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split at paragraph, then line, then word boundaries; nothing is dropped."""
    chunks: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = rest.rfind("\n\n", 0, limit)
        if cut <= 0:
            cut = rest.rfind("\n", 0, limit)
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


def reply_texts(agent_name: str, text: str, named_by_username: bool) -> list[str]:
    """Message texts for one agent's reply; without a custom username the name leads in bold."""
    body = escape(text)
    prefix = "" if named_by_username else f"*{escape(agent_name)}*: "
    parts = split(body, MAX_TEXT - len(prefix))
    if not parts:
        return []
    return [prefix + parts[0], *(prefix + p for p in parts[1:])] if prefix else parts
