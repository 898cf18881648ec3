"""Words that point a person to another command name the configured one (SLACK_COMMAND), and words for the
operator at a terminal name no slash command at all: `/letta` may be another app's, or not this workspace's."""

from __future__ import annotations

import asyncio

import pytest

from bridge.letta.client import LettaClient
from bridge.manifest import manifest
from bridge.slack.listeners.workspaces import done_view
from bridge.targets import TargetError, resolve_target
from tests.fakes.letta import FakeLetta

NOT_V4 = "agent-00000000-0000-0000-0000-000000000000"  # a uuid, but not a v4 one: 0.16.x answers 422


def refusal(letta: FakeLetta, command: str | None) -> TargetError:
    async def go() -> TargetError:
        client = LettaClient(letta.base_url)
        try:
            with pytest.raises(TargetError) as caught:
                await resolve_target(client, [NOT_V4], command=command)
            return caught.value
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_an_id_letta_refuses_names_the_configured_listing_in_slack_and_none_at_the_terminal(letta: FakeLetta) -> None:
    """In Slack the listing is `/crew agents`; at the terminal (`channels connect`, `check`) the server's agent list."""
    told = refusal(letta, "/crew")
    assert "`/crew agents` lists them" in str(told) and "/letta" not in str(told), str(told)
    assert "/crew" not in told.for_operator and "/letta" not in told.for_operator, told.for_operator
    assert "the Letta server's agent list" in told.for_operator, told.for_operator
    unknown = refusal(letta, None)
    assert str(unknown) == unknown.for_operator == told.for_operator


def test_the_setup_modal_after_a_server_change_names_the_configured_status_command() -> None:
    said = repr(done_view("https://letta.example.com", "https://api.letta.com", 2, "/crew"))
    assert "run `/crew status` in each" in said and "`/letta" not in said, said


def test_a_renamed_commands_manifest_names_no_letta_command() -> None:
    """The scopes' comments say what each is for without naming a slash command the app may not have."""
    assert "/letta" not in manifest("https://bridge.acme.test", "/crew")
