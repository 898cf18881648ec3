"""A command that changes nothing (`agents`, `groups`, `status`) and outlasts COMMAND_DEADLINE was told to run
`status` to see "whether anything changed": nothing could have, and for `status` itself it sent the person round in
a circle (found by review revDR). It is asked again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.domain import Catalog
from bridge.slack.commands import Command
from bridge.slack.listeners import commands as listener
from bridge.slack.listeners.commands import CommandHandler, Invocation


class SlowConfigurator:
    settings = SimpleNamespace(
        letta_base_url="http://letta:8283", slack_command="/letta", slack_configure_by="everyone",
        slack_configure_users=(), slack_catalog="everyone",
    )

    async def catalog(self) -> Catalog:
        await asyncio.sleep(5)  # a Letta answering its list pages slowly
        raise AssertionError("not reached")


@pytest.mark.parametrize("action", ["agents", "groups"])
def test_a_read_only_command_past_the_deadline_is_not_told_to_check_what_changed(
    monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    monkeypatch.setattr(listener, "COMMAND_DEADLINE", 0.2)
    handler = CommandHandler(SlowConfigurator(), tasks=None)  # type: ignore[arg-type]
    said: list[dict[str, Any]] = []

    async def respond(**kwargs: Any) -> None:
        said.append(kwargs)

    asyncio.run(handler._answer(Command(action), Invocation("T1", "C1", "U1"), None, respond, False))  # type: ignore[arg-type]
    [answer] = said
    assert "did not answer within" in answer["text"], answer
    assert "whether anything changed" not in answer["text"], answer["text"]
