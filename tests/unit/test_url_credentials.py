"""A Letta URL's user and password never reach Slack (docs/security.md): not in /letta connect's menu, not in
/letta setup's form (the default server's are the operator's, and every installed workspace would see them), not
in an error about an App Server agent id sent to a REST server. tests/e2e/test_hostile.py checks /letta status and
the catalogue."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from bridge.domain import AgentInfo, Catalog
from bridge.letta.client import LettaClient
from bridge.slack.commands import Command
from bridge.slack.listeners.commands import CommandHandler, Invocation
from bridge.slack.listeners.workspaces import done_view, setup_view
from bridge.targets import TargetError, resolve_target

URL = "http://lettauser:s3cret-pass@letta.internal:8283"
ALICE = AgentInfo("agent-00000000-0000-4000-8000-00000000000a", "alice", "")


class Configurator:
    settings = SimpleNamespace(
        letta_base_url=URL, slack_command="/letta", slack_configure_by="everyone", slack_configure_users=("U1",),
        slack_catalog="everyone",
    )

    async def catalog(self) -> Catalog:
        return Catalog(None, (ALICE,), True)

    def bindable(self, channel: str) -> None:
        pass


def test_the_connect_menu_names_the_server_without_its_password() -> None:
    handler = CommandHandler(Configurator(), tasks=None)  # type: ignore[arg-type]
    message = asyncio.run(handler._run(Command("connect"), Invocation("T1", "C1", "U1"), client=None))  # type: ignore[arg-type]
    shown = message.text + repr(message.blocks)
    assert "s3cret-pass" not in shown and "lettauser" not in shown and "letta.internal:8283" in shown


def test_the_setup_form_never_shows_the_default_servers_password() -> None:
    shown = repr(setup_view("", False, URL)) + repr(done_view("", URL))
    assert "s3cret-pass" not in shown and "letta.internal:8283" in shown
    own = setup_view(URL, True, "https://api.letta.com")
    said = own["blocks"][0]["text"]["text"]
    assert "s3cret-pass" not in said and "letta.internal:8283" in said
    assert "s3cret-pass" not in repr(done_view(URL, "https://api.letta.com"))


def test_an_app_server_agent_id_sent_to_a_rest_server_is_refused_without_its_password() -> None:
    client = LettaClient(URL)
    with pytest.raises(TargetError) as caught:
        asyncio.run(resolve_target(client, ["agent-local-00000000-0000-4000-8000-00000000000a"]))
    assert "s3cret-pass" not in str(caught.value) and "letta.internal:8283" in str(caught.value)
