"""The `user_message`s a Letta server writes into an agent's history itself, in the middle of a turn.

0.11.7's agents store a tool call's `request_heartbeat=true` as a user message whose content is packed JSON
`{"type": "heartbeat", ...}` (letta/system.py get_heartbeat, stored with role user and listed as `user_message`),
and the same packing (always with a "time") with `"login"` or `"system_alert"` for its other notes to the model.
0.16.8 stores its keep-alive as a user message `<system-alert>…</system-alert>` (reference/letta/README.md §17).
None of them is someone asking: the agent's answer follows them, so a turn read back from history must not end at
one (reference §24). The server writes them with no `name` (the bridge names each sender), and the packed ones with
no `otid` (every send of the bridge carries one; 0.16.8's keep-alive is given one): words alone would also skip a
person's message that merely looks like one, and a recovered turn would take the next turn's answer.
"""

from __future__ import annotations

import json

from bridge.letta.models import LettaMessage, UserMessage, content_text

LETTAS_OWN = frozenset({"heartbeat", "login", "system_alert"})  # letta/system.py's packed kinds, not a user's
ALERT = ("<system-alert>", "</system-alert>")


def written_by_letta(message: UserMessage) -> bool:
    """Whether this user message is one the server wrote itself (a heartbeat, a login, a system alert)."""
    if message.name is not None:
        return False
    text = content_text(message.content).strip()
    if text.startswith(ALERT[0]) and text.endswith(ALERT[1]):
        return True
    if message.otid is not None or not text.startswith("{"):
        return False
    try:
        packed = json.loads(text)
    except ValueError:
        return False
    return isinstance(packed, dict) and packed.get("type") in LETTAS_OWN and "time" in packed


def someone_asks(message: LettaMessage) -> bool:
    """A user message someone sent (not one Letta wrote itself): the turn before it has ended."""
    return isinstance(message, UserMessage) and not written_by_letta(message)
