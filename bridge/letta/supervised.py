"""The workers' answers of a server-run supervisor group, read out of the manager's tool return.

On Letta 0.11.7 the workers' own messages never appear in a supervisor group's answer: the manager calls
`send_message_to_all_agents_in_group`, and its `tool_return_message.tool_return` is a string listing one
`<agent_id> said: '<reply>'` per worker, keyed by agent id (../shared/reference/letta README §5):

    "[\"agent-608c… said: 'alice says hi'\", \"agent-f609… said: 'bob says hi'\"]"

The list is JSON on the captured server; a Python repr (single-quoted items) or a bare string is read too.
A reply may itself hold quotes, apostrophes, newlines or the words " said: '", so an item is split at its
first `said: '` only and its closing quote is the item's last character.
"""

from __future__ import annotations

import ast
import json
import re

SUPERVISOR_TOOL = "send_message_to_all_agents_in_group"

_ID = r"agent-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ITEM = re.compile(rf"^\s*(?:Agent\s+)?({_ID})\s+said:\s*(.*?)\s*$", re.DOTALL)
# Inside a string that is not a list: each worker starts at an agent id followed by "said:".
_START = re.compile(rf"(?:Agent\s+)?({_ID})\s+said:\s*")
_SEPARATOR = re.compile(r'"?\s*,?\s*"?\s*$')


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text[:1] in "'\"":
        return text[1:]
    return text


def _items(tool_return: str) -> list[str] | None:
    text = tool_return.strip()
    for load in (json.loads, ast.literal_eval):
        try:
            value = load(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            continue
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return list(value)
        if isinstance(value, str):
            text = value.strip()
    return None


def worker_replies(tool_return: str | None) -> list[tuple[str, str]]:
    """(agent id, reply) per worker, in the order the tool return lists them; [] when it lists none."""
    if not tool_return:
        return []
    items = _items(tool_return)
    out: list[tuple[str, str]] = []
    if items is not None:
        for item in items:
            match = _ITEM.match(item)
            if match is not None:
                out.append((match.group(1), _unquote(match.group(2)).strip()))
        return out
    # Not a list we can read (cut short, or a format change): split at each "<agent id> said:".
    text = tool_return.strip()
    if text[:1] == "[" and text[-1:] == "]":
        text = text[1:-1]
    starts = list(_START.finditer(text))
    for position, match in enumerate(starts):
        end = starts[position + 1].start() if position + 1 < len(starts) else len(text)
        # Drop what separates this item from the next: its closing double quote, a comma, the next opening one.
        chunk = _SEPARATOR.sub("", text[match.end() : end].strip())
        out.append((match.group(1), _json_unescape(_unquote(chunk)).strip()))
    return out


def _json_unescape(text: str) -> str:
    """A chunk cut out of JSON text still has its escapes (\\" and \\n); undo them when they read as JSON."""
    try:
        value = json.loads(f'"{text}"')
    except ValueError:
        return text
    return value if isinstance(value, str) else text
