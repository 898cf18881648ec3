"""Direct messages and group DMs where a channel would be named (bridge/slack/directory.py, turn_input.py): neither
has a name people see (a DM none, a group DM a generated mpdm-a--b--c-1), and the manifest grants neither im:read nor
mpim:read, so Slack refuses conversations.info for both; a refusal is kept as a name is, not asked again each turn."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bridge.config import Settings
from bridge.domain import Turn
from bridge.manifest import SCOPES
from bridge.slack.directory import NAME_KEPT_SECONDS, Directory
from bridge.turn_input import InputAssembly
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_reference import DEFAULT_SCOPES

GROUP_DM = "G0456MPIM"


@pytest.mark.parametrize("scopes", [DEFAULT_SCOPES, DEFAULT_SCOPES + ",mpim:read"])
def test_a_group_dm_is_not_named_to_the_agents_by_its_generated_mpdm_name(scopes: str) -> None:
    """A group DM (is_mpim) has no channel name a person sees: Slack's `name` is generated (mpdm-a--b--c-1).
    ec14902 says a DM as "a direct message"; a group DM is still said as the channel '#mpdm-…'. With mpim:read
    (an app given it) conversations.info says is_mpim; without it, Slack refuses for that scope."""
    with FakeSlack(scopes=scopes) as slack:
        slack.add_channel("G0456MPIM", "mpdm-alice--bob--carol-1", is_mpim=True)

        async def main() -> tuple[str, str]:
            names = Directory(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
            inputs = InputAssembly(Settings(), None, names, None)  # type: ignore[arg-type]
            prefix = inputs._prefix("alice", "G0456MPIM", await names.channel_name("G0456MPIM"))
            return await names.channel_shown("G0456MPIM"), prefix

        shown, prefix = asyncio.run(main())
        assert "mpdm-" not in shown, shown
        assert "mpdm-" not in prefix, prefix
        assert (shown, prefix) == ("a group direct message", "[alice in a group direct message on Slack] ")


def test_a_dm_turn_does_not_ask_slack_for_the_dm_name_every_time() -> None:
    """The manifest grants no im:read, so Slack answers conversations.info on a DM with missing_scope (the method's
    accepted scopes are per conversation type: channels:read, groups:read, mpim:read, im:read). A D… id is known a
    DM without asking (Directory.is_dm) and its name is never said, yet every DM turn asks conversations.info again."""
    assert "im:read" not in {s.name for s in SCOPES}
    with FakeSlack() as slack:
        slack.fail_next("conversations.info", "missing_scope", times=10, body={
            "ok": False, "error": "missing_scope", "needed": "im:read", "provided": slack.scopes})

        async def main() -> list[str]:
            names = Directory(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
            return [await names.channel_shown("D0123ABCD") for _ in range(3)]

        assert asyncio.run(main()) == ["a direct message"] * 3
        assert len(slack.calls_to("conversations.info")) <= 1, len(slack.calls_to("conversations.info"))


@pytest.mark.parametrize("needed", ["mpim:read", "channels:read,groups:read,mpim:read,im:read"])
def test_a_group_dm_is_not_named_to_the_agents_by_its_id_when_slack_refuses_its_info(needed: str) -> None:
    """The manifest grants no mpim:read: conversations.info on a group DM answers missing_scope, and the agents are
    told '[alice in #G0456MPIM on Slack]' -- the id-as-channel-name ec14902 removed for one-to-one DMs. Should Slack
    name every scope the method takes, a token with channels:read and groups:read refused is in a (group) DM."""
    assert "mpim:read" not in {s.name for s in SCOPES}
    with FakeSlack() as slack:
        slack.add_channel("G0456MPIM", "mpdm-alice--bob--carol-1", is_mpim=True)
        slack.fail_next("conversations.info", "missing_scope", times=10, body={
            "ok": False, "error": "missing_scope", "needed": needed, "provided": slack.scopes})

        async def main() -> str:
            names = Directory(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
            inputs = InputAssembly(Settings(), None, names, None)  # type: ignore[arg-type]
            return inputs._prefix("alice", "G0456MPIM", await names.channel_name("G0456MPIM"))

        prefix = asyncio.run(main())
        assert "G0456MPIM" not in prefix, prefix
        assert prefix == "[alice in a group direct message on Slack] "


@pytest.mark.parametrize("refusal", ["missing_scope", "channel_not_found"])
def test_a_conversation_slack_refuses_is_asked_about_again_only_once_a_name_would_be(refusal: str) -> None:
    """A group DM's info refused (no mpim:read), or a channel Slack does not show the bot: every turn there asked
    conversations.info again. The answer is kept NAME_KEPT_SECONDS, as a name is."""
    with FakeSlack() as slack:
        if refusal == "missing_scope":
            slack.add_channel(GROUP_DM, "mpdm-alice--bob--carol-1", is_mpim=True)
        now = [0.0]

        async def main() -> list[str]:
            names = Directory(AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), clock=lambda: now[0])
            shown = [await names.channel_shown(GROUP_DM) for _ in range(3)]
            now[0] += NAME_KEPT_SECONDS - 1
            shown.append(await names.channel_shown(GROUP_DM))
            assert len(slack.calls_to("conversations.info")) == 1
            now[0] += 2
            return [*shown, await names.channel_shown(GROUP_DM)]

        words = "a group direct message" if refusal == "missing_scope" else f"#{GROUP_DM}"
        assert asyncio.run(main()) == [words] * 5
        assert len(slack.calls_to("conversations.info")) == 2, "asked again once a name would be"


def test_a_dm_turns_input_asks_slack_nothing_about_the_dm() -> None:
    """Each DM turn's input asked conversations.info for the DM's name, which it never says (and which Slack,
    without im:read, refuses): a D… id is a DM without asking."""
    with FakeSlack() as slack:
        slack.add_user("U0ALICE01", "alice")
        turn = Turn("T0123ABCD", "D0123ABCD", "1764064830.000100", "1764064830.000100", "U0ALICE01", "hello")

        async def main() -> str:
            client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
            names = Directory(client)
            names.channel_name_soon("D0123ABCD")
            inputs = InputAssembly(Settings(), None, names, None)  # type: ignore[arg-type]
            return (await inputs.assemble(turn, 1, ["helper"])).text

        assert asyncio.run(main()) == "[alice in a direct message on Slack] hello"
        assert slack.calls_to("conversations.info") == []
