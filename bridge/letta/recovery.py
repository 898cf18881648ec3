"""Finding a past send on Letta by the `otid` the bridge gave it, so a send is never repeated blindly.

Letta has no lookup by otid: page back through an agent's history (newest page first; `before` pages to
older messages on every captured version) until the `user_message` carrying the otid shows up. The turn's
reply is the agent's `assistant_message`s after it, up to the next user message. A send to a conversation is
looked up in that conversation's history: the agent's own mixes every thread, so the next user message there
may belong to another thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.letta.client import LettaClient
from bridge.letta.models import AssistantMessage, LettaMessage, ToolReturnMessage, UserMessage
from bridge.letta.supervised import SUPERVISOR_TOOL, worker_replies

PAGE = 100
MAX_PAGES = 10


@dataclass(frozen=True)
class Found:
    """The otid's user message exists; `texts` is what the agent answered after it (maybe nothing yet);
    `workers` is what a supervisor's workers answered, read from its tool return, as (agent id, text)."""

    texts: tuple[str, ...]
    workers: tuple[tuple[str, str], ...] = ()


def replies_after(messages: Sequence[LettaMessage], otid: str) -> Found | None:
    for index, message in enumerate(messages):
        if isinstance(message, UserMessage) and message.otid == otid:
            texts: list[str] = []
            workers: list[tuple[str, str]] = []
            seen: set[str] = set()
            for later in messages[index + 1 :]:
                if isinstance(later, UserMessage):
                    break
                if isinstance(later, ToolReturnMessage) and later.name == SUPERVISOR_TOOL:
                    workers.extend(worker_replies(later.tool_return))
                if isinstance(later, AssistantMessage) and later.text.strip():
                    key = later.otid or later.id or str(len(texts))
                    if key not in seen:
                        seen.add(key)
                        texts.append(later.text.strip())
            return Found(tuple(texts), tuple(workers))
    return None


async def find_turn(client: LettaClient, agent_id: str, otid: str, conversation: str | None = None) -> Found | None:
    """None when Letta never saw the otid in this agent's (or this conversation's) recent history (safe to send
    again)."""
    collected: list[LettaMessage] = []
    before: str | None = None
    for _ in range(MAX_PAGES):
        if conversation is not None:
            page = await client.conversation_history(conversation, limit=PAGE, before=before)
        else:
            page = await client.history(agent_id, limit=PAGE, before=before)
        if not page:
            break
        collected = [*page, *collected]
        found = replies_after(collected, otid)
        if found is not None:
            return found
        oldest = page[0].id if hasattr(page[0], "id") else None
        if not oldest or oldest == before or len(page) < PAGE:
            break
        before = oldest
    return None


async def recover_turn(
    client: LettaClient, agent_id: str, otid: str, patience: float, conversation: str | None = None
) -> Found | None:
    """Like `find_turn`, but when Letta has the message and is still answering it, wait for the answer.

    A bridge that died mid-send leaves the run going on the server; its reply lands in history later.
    Gives up after `patience` seconds with whatever is there (possibly nothing).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.5
    while True:
        found = await find_turn(client, agent_id, otid, conversation)
        if found is None or found.texts or loop.time() >= deadline:
            return found
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 2, 5.0)
