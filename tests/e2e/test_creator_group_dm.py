"""SLACK_CONFIGURE_BY=creator lets 'the channel's creator' connect, but the manifest grants no mpim:read, so Slack
refuses conversations.info on a group DM (missing_scope) and never says who started it. Its creator was told only
'Slack would not tell me who created this channel (`missing_scope`)': nothing anyone could act on. The refusal now
says plainly who can connect a group DM."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.slash import ADMIN, CREATOR, slash_world

GROUP_DM = "G0456MPIM"


def test_the_creator_of_a_group_dm_is_told_who_can_connect_one(tmp_path: Path) -> None:
    with slash_world(tmp_path, SLACK_CONFIGURE_BY="creator") as world:
        ids = [world.letta.add_agent(n) for n in ("alice", "bob")]
        group = world.letta.add_group(ids)  # type: ignore[union-attr]
        world.slack.add_channel(GROUP_DM, "mpdm-cree--mel--ada-1", creator=CREATOR, is_mpim=True)
        answer = world.ask(f"connect {group}", GROUP_DM, user=CREATOR)
        assert "missing_scope" not in answer, answer
        assert "Slack does not tell me who started a group direct message" in answer, answer
        assert "workspace admins and owners" in answer and "SLACK_CONFIGURE_USERS" in answer, answer
        assert "Connected" in world.ask(f"connect {group}", GROUP_DM, user=ADMIN)
