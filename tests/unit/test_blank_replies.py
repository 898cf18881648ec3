"""A reply Slack would show as nothing (Markdown that renders to no text, or only invisible characters) is said
in the thread as an empty reply, as a blank one is, never dropped unseen or posted as a blank message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.domain import AgentReply, TurnInput
from bridge.slack.render import shows_nothing
from tests.unit.test_post_order_turns import run_turn

NOTHING = ["[]()", "## ", "&#32;", "\u200b\u2060", "\ufeff", " \u3000\n"]


@pytest.mark.parametrize("text", NOTHING)
def test_a_reply_that_renders_to_nothing_is_said_as_empty(tmp_path: Path, text: str) -> None:
    """Before, `[]()` or `## ` passed the blank check, rendered to no message, and was recorded as posted: the
    thread heard nothing of alice and the turn was done; invisible characters were posted as a blank message."""

    async def events(_input: TurnInput, _stop: Callable[[], Any]) -> AsyncIterator[AgentReply]:
        yield AgentReply("alice", text, "agent-alice", "agent-alice", 0)

    async def main() -> tuple[str, list[tuple[str | None, str]]]:
        status, worker, job = await run_turn(tmp_path, True, events)
        posts = await worker.store.posts_of(job.turn_id)
        await worker.store.close()
        return status, posts

    status, posts = asyncio.run(main())
    assert posts == [(None, "9.000001")], posts  # the bridge's own words, not alice's
    assert status == "failed"  # no agent answered with anything to show (ops: `partial` needs one that did)


@pytest.mark.parametrize("text", ["[x](https://example.com)", "`\u200b`", "—", "1."])
def test_a_short_reply_that_shows_something_is_kept(text: str) -> None:
    assert not shows_nothing(text)
